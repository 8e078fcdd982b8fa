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
