package ratelimit

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies says which peers are trusted proxies: peers that append the
// address they saw to X-Forwarded-For. The zero value trusts none.
type Proxies struct {
	// All trusts every peer (every request comes through a proxy).
	All bool
	// Nets trusts the peers in these networks.
	Nets []netip.Prefix
	// Peers, if set, trusts the addresses it reports as nodes of this
	// server's cluster (Config.Peers).
	Peers func(netip.Addr) bool
}

// Any reports whether p trusts any peer at all.
func (p Proxies) Any() bool { return p.All || len(p.Nets) > 0 || p.Peers != nil }

// Trusted reports whether the peer at ip (an address with or without a
// port) is a trusted proxy.
func (p Proxies) Trusted(ip string) bool {
	if p.All {
		return true
	}
	if len(p.Nets) == 0 && p.Peers == nil {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, n := range p.Nets {
		if n.Contains(a) {
			return true
		}
	}
	return p.Peers != nil && p.Peers(a)
}

// ClientAddr returns the address of the client of r. It is the one rule
// for every per-client bound (rate limits, connections, request bytes):
// the peer's IP address, unless the peer is a trusted proxy; then the
// X-Forwarded-For entries are walked from the right, past those added by
// further trusted proxies, and the first other address is the client.
// Entries left of it were written by the client or hops nobody vouches
// for and prove nothing.
func ClientAddr(r *http.Request, p Proxies) string {
	addr := PeerIP(r.RemoteAddr)
	if !p.Trusted(addr) {
		return addr
	}
	xff := r.Header.Values("X-Forwarded-For")
	for i := len(xff) - 1; i >= 0; i-- {
		entries := strings.Split(xff[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			e := strings.TrimSpace(entries[j])
			if e == "" {
				continue
			}
			addr = e
			if p.All || !p.Trusted(e) {
				return addr
			}
		}
	}
	return addr
}

// PeerIP is the IP address of a host:port network address (the address
// itself when it has no port).
func PeerIP(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return host
}

// ParsePrefixes parses a comma-separated list of networks (CIDR, such as
// 10.0.0.0/8) and single addresses.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			pfx, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", item, err)
			}
			out = append(out, pfx.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", item, err)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
