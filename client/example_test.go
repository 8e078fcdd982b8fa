package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/streamtier/durable-streams/client"
)

// The examples need a running server, so they are compiled but not run;
// docs/client.md shows the same code.

func Example() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:4437")
	s := c.Stream("demo/events")

	if _, err := s.Create(ctx, client.CreateOptions{ContentType: "application/json"}); err != nil {
		log.Fatal(err)
	}
	if _, err := s.AppendJSON(ctx, map[string]any{"type": "signup", "user": 42}, client.AppendOptions{}); err != nil {
		log.Fatal(err)
	}
	md, err := s.Head(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tail:", md.NextOffset)
}

func ExampleReader_Messages() {
	ctx := context.Background()
	s := client.New("http://127.0.0.1:4437").Stream("demo/events")

	// Catch up from the start, then follow live (SSE for JSON streams).
	r := s.Read(ctx, client.ReadOptions{Offset: client.OffsetStart, Live: client.LiveAuto})
	defer r.Close()
	for m, err := range r.Messages() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", m.Data)
		if m.LastInBatch {
			saveOffset(m.NextOffset) // resume later with ReadOptions{Offset: ...}
		}
	}
	// The loop ends when the stream is closed.
}

func saveOffset(string) {}

func ExampleReader_Next() {
	ctx := context.Background()
	s := client.New("http://127.0.0.1:4437").Stream("demo/log")

	r := s.Read(ctx, client.ReadOptions{Live: client.LiveLongPoll})
	defer r.Close()
	for {
		b, err := r.Next()
		if err != nil {
			break // io.EOF: the stream was closed
		}
		if b.UpToDate && len(b.Data) == 0 {
			fmt.Println("caught up at", b.NextOffset)
			continue
		}
		fmt.Printf("%s", b.Data)
	}
}

func ExampleStream_Producer() {
	ctx := context.Background()
	s := client.New("http://127.0.0.1:4437").Stream("demo/events")

	p := s.Producer(client.ProducerOptions{
		ID:        "importer-1",
		AutoClaim: true, // no stored epoch: take the id over from older runs
		Linger:    5 * time.Millisecond,
		OnError:   func(err error) { log.Printf("producer stopped: %v", err) },
	})
	for i := range 1000 {
		if err := p.AppendJSON(ctx, map[string]int{"n": i}); err != nil {
			log.Fatal(err)
		}
	}
	// Close flushes: every message is then stored exactly once, in order.
	if err := p.Close(ctx); err != nil {
		var stale *client.StaleEpochError
		if errors.As(err, &stale) {
			log.Fatalf("fenced by epoch %d", stale.CurrentEpoch)
		}
		log.Fatal(err)
	}
}

func ExampleHTTPError() {
	ctx := context.Background()
	s := client.New("http://127.0.0.1:4437").Stream("demo/missing")

	_, err := s.Head(ctx)
	switch {
	case errors.Is(err, client.ErrNotFound):
		fmt.Println("no such stream")
	case err != nil:
		var he *client.HTTPError
		if errors.As(err, &he) {
			fmt.Println(he.Status, he.Code, he.Message)
		}
	}
}

func ExampleStream_Consume() {
	ctx := context.Background()
	s := client.New("http://127.0.0.1:4437").Stream("demo/events")

	// Handle every batch once (at least once across crashes); a restart
	// resumes after the last batch the handler accepted.
	err := s.Consume(ctx, func(ctx context.Context, b client.Batch) error {
		msgs, err := b.JSONMessages()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			fmt.Printf("%s\n", m)
		}
		return nil // commits b.NextOffset; an error retries the batch after a backoff
	}, client.ConsumeOptions{
		Store:   client.NewFileOffsetStore("/var/lib/myapp/demo-events.offset"),
		OnError: func(err error, wait time.Duration) { log.Printf("consumer: %v (retry in %v)", err, wait) },
	})
	if err != nil {
		log.Fatal(err) // the stream does not exist, access denied, ...
	}
}

func ExampleStream_ReadAll() {
	ctx := context.Background()
	s := client.New("http://127.0.0.1:4437").Stream("demo/events")

	b, err := s.ReadAll(ctx, client.OffsetStart)
	if err != nil {
		log.Fatal(err)
	}
	msgs, _ := b.JSONMessages()
	fmt.Println(len(msgs), "messages; continue from", b.NextOffset)
}

func ExampleAppendOptions_producer() {
	ctx := context.Background()
	s := client.New("http://127.0.0.1:4437").Stream("demo/events")

	// The caller keeps the producer's epoch and seq; retries of this
	// append are stored at most once.
	res, err := s.AppendJSON(ctx, map[string]int{"n": 1}, client.AppendOptions{
		Producer: &client.ProducerState{ID: "importer-1", Epoch: 3, Seq: 17},
	})
	var stale *client.StaleEpochError
	switch {
	case errors.As(err, &stale):
		log.Fatalf("fenced by epoch %d", stale.CurrentEpoch)
	case err != nil:
		log.Fatal(err)
	case res.Duplicate:
		fmt.Println("already stored")
	}
}
