package subscriptions

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// fakeResolver answers from a table and fails for other names.
type fakeResolver map[string][]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := f[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func TestCheckWebhookURL(t *testing.T) {
	res := fakeResolver{"public.example": {"93.184.216.34"}, "rebind.example": {"93.184.216.34", "10.0.0.7"},
		"meta.example": {"169.254.169.254"}}
	for _, tc := range []struct {
		url           string
		allowLoopback bool
		ok            bool
	}{
		{"https://public.example/hook", false, true},
		{"https://unresolvable.example/hook", false, true}, // the dial-time check guards it
		{"HTTPS://public.example/hook", false, true},
		{"http://public.example/hook", false, false}, // production needs https
		{"http://public.example/hook", true, false},
		{"https://rebind.example/hook", false, false},
		{"https://meta.example/latest", false, false},
		{"http://127.0.0.1:8080/hook", false, false},
		{"http://127.0.0.1:8080/hook", true, true},
		{"http://127.0.0.2/hook", true, true},
		{"http://localhost:9/hook", false, false},
		{"http://localhost:9/hook", true, true},
		{"https://[::1]/hook", true, true},
		{"https://[::1]/hook", false, false},
		{"http://10.0.0.1/hook", true, false}, // private networks: never
		{"https://10.0.0.1/hook", true, false},
		{"https://172.16.5.4/hook", true, false},
		{"https://192.168.1.1/hook", true, false},
		{"https://169.254.169.254/hook", true, false},
		{"https://100.64.0.1/hook", false, false},
		{"https://0.0.0.0/hook", true, false},
		{"https://[fe80::1]/hook", true, false},
		{"https://[fd00::1]/hook", true, false},
		{"https://[::ffff:10.0.0.1]/hook", true, false},
		{"https://[64:ff9b::a00:1]/hook", true, false}, // NAT64 of 10.0.0.1
		{"https://[2002:a00:1::]/hook", true, false},   // 6to4 of 10.0.0.1
		{"https://224.0.0.1/hook", false, false},
		{"https://93.184.216.34/hook", false, true},
		{"ftp://public.example/hook", false, false},
		{"https://user:pw@public.example/hook", false, false},
		{"/relative/hook", false, false},
		{"https://public.example/hook#frag", false, false},
	} {
		_, err := CheckWebhookURL(context.Background(), tc.url, tc.allowLoopback, res)
		if (err == nil) != tc.ok {
			t.Errorf("CheckWebhookURL(%q, loopback=%v) = %v, want ok=%v", tc.url, tc.allowLoopback, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrWebhookURL) {
			t.Errorf("CheckWebhookURL(%q): error %v does not wrap ErrWebhookURL", tc.url, err)
		}
	}
}

// TestGuardedDialer checks the connect-time guard: it sees the address
// being dialed after name resolution, so a name that passed the
// subscribe-time check but resolves to a refused address now (DNS
// rebinding; here "localhost") is refused before connecting.
func TestGuardedDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, tc := range []struct {
		addr          string
		allowLoopback bool
		ok            bool
	}{
		{"127.0.0.1:" + port, true, true},
		{"127.0.0.1:" + port, false, false},
		{"localhost:" + port, false, false},
	} {
		c, err := guardedDialer(tc.allowLoopback, time.Second).DialContext(context.Background(), "tcp", tc.addr)
		if c != nil {
			c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("dial %s (loopback=%v) = %v, want ok=%v", tc.addr, tc.allowLoopback, err, tc.ok)
		}
		if err != nil && !tc.ok && !errors.Is(err, ErrWebhookURL) {
			t.Errorf("dial %s: error %v does not wrap ErrWebhookURL", tc.addr, err)
		}
	}
}
