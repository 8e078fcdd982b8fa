package servertest_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/streamtier/durable-streams/client"
	"github.com/streamtier/durable-streams/server"
	"github.com/streamtier/durable-streams/server/servertest"
)

// A server shared by several tests (in a TestMain, say), cleared between
// them. In a single test, servertest.Start(t, server.Config{}) does the
// same and stops the server when the test ends.
func Example() {
	ctx := context.Background()
	ds, err := servertest.New(server.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer ds.Close(ctx)

	s := ds.Client().Stream("orders")
	if _, err := s.Create(ctx, client.CreateOptions{ContentType: "application/json"}); err != nil {
		log.Fatal(err)
	}
	if _, err := s.AppendJSON(ctx, map[string]int{"id": 1}, client.AppendOptions{}); err != nil {
		log.Fatal(err)
	}
	b, err := s.ReadAll(ctx, client.OffsetStart)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b.Data))

	// The next test starts from an empty server at the same URL.
	if err := ds.Reset(ctx); err != nil {
		log.Fatal(err)
	}
	_, err = s.Head(ctx)
	fmt.Println(errors.Is(err, client.ErrNotFound))
	// Output:
	// [{"id":1}]
	// true
}
