package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Webhook targets are checked twice (protocol section 6.2, "Webhook URLs
// MUST be validated to reduce SSRF risk"):
//
//  1. when a subscription is created, its URL (scheme, host, and the
//     addresses the host resolves to then) by CheckWebhookURL;
//  2. on every connection a delivery opens, the address actually dialed,
//     by the dialer's Control hook (guardedDialer). A name that resolved
//     to a public address at subscribe time and to 10.0.0.1 later (DNS
//     rebinding) is refused here, after resolution and before connect.
//
// Refused always: private (RFC 1918, fc00::/7), link-local, unspecified,
// multicast, CGNAT, benchmark and reserved ranges, and IPv6 forms that
// embed such an IPv4 address. Loopback targets (localhost, 127.0.0.0/8,
// ::1) are the protocol's development exception: allowed, over http or
// https, only when the server is configured with AllowLoopback
// (serve --webhook-allow-private). Everything else must use https.

// ErrWebhookURL is wrapped by the errors of CheckWebhookURL and of dials
// the guard refuses.
var ErrWebhookURL = errors.New("webhook URL rejected")

// maxURLLen bounds a webhook URL.
const maxURLLen = 2048

// resolveTimeout bounds the DNS lookup of a webhook host at subscribe time.
const resolveTimeout = 2 * time.Second

// extraBlocked are ranges outside netip's Is* predicates that must not be
// reachable from a public webhook.
var extraBlocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("100::/64"),        // discard
}

// nat64 and sixToFour embed an IPv4 address that the check applies to.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// addrRefusal says why ip may not be a webhook target, or "" if it may.
func addrRefusal(ip netip.Addr, allowLoopback bool) string {
	ip = ip.Unmap()
	if ip.Is6() && (nat64.Contains(ip) || sixToFour.Contains(ip)) {
		b := ip.As16()
		var v4 [4]byte
		if nat64.Contains(ip) {
			copy(v4[:], b[12:16])
		} else {
			copy(v4[:], b[2:6])
		}
		return addrRefusal(netip.AddrFrom4(v4), allowLoopback)
	}
	switch {
	case ip.IsLoopback():
		if allowLoopback {
			return ""
		}
		return "loopback targets are refused (serve --webhook-allow-private allows them for development)"
	case ip.IsPrivate():
		return "private network targets are refused"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "link-local targets are refused"
	case ip.IsUnspecified(), ip.IsMulticast():
		return "unspecified and multicast addresses are refused"
	}
	for _, p := range extraBlocked {
		if p.Contains(ip) {
			return "reserved address ranges are refused"
		}
	}
	return ""
}

// isLocalhostName reports whether host is a name for the local machine.
func isLocalhostName(host string) bool {
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// Resolver looks up host names; net.DefaultResolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// CheckWebhookURL validates a webhook URL at subscribe time and returns
// it in canonical form. res resolves host names (nil: no lookup; the
// dial-time check still applies); a name that does not resolve is
// accepted, since the dial-time check guards every connection.
func CheckWebhookURL(ctx context.Context, raw string, allowLoopback bool, res Resolver) (string, error) {
	fail := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%w: %s", ErrWebhookURL, fmt.Sprintf(format, args...))
	}
	if len(raw) > maxURLLen {
		return fail("webhook.url must be at most %d bytes", maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fail("webhook.url must be an absolute http(s) URL")
	}
	if u.User != nil {
		return fail("webhook.url must not contain credentials")
	}
	if u.Fragment != "" {
		return fail("webhook.url must not contain a fragment")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return fail("webhook.url must use https")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return fail("webhook.url has no host")
	}
	ip, ipErr := netip.ParseAddr(host)
	local := isLocalhostName(host) || (ipErr == nil && ip.Unmap().IsLoopback())
	switch {
	case local && !allowLoopback:
		return fail("loopback targets are refused (serve --webhook-allow-private allows them for development)")
	case scheme == "http" && !local:
		return fail("webhook.url must use https (http only for localhost and 127.0.0.x in development)")
	}
	if ipErr == nil {
		if why := addrRefusal(ip, allowLoopback); why != "" {
			return fail("%s", why)
		}
	} else if !local && res != nil {
		lctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		addrs, err := res.LookupNetIP(lctx, "ip", host)
		cancel()
		if err == nil {
			for _, a := range addrs {
				if why := addrRefusal(a, allowLoopback); why != "" {
					return fail("%s resolves to %s: %s", host, a, why)
				}
			}
		}
	}
	u.Scheme = scheme
	return u.String(), nil
}

// guardedDialer returns a dialer whose Control hook refuses connections
// to addresses addrRefusal rejects. Control runs after name resolution,
// for the address about to be connected, so it also covers names that
// resolve differently at delivery time than at subscribe time.
func guardedDialer(allowLoopback bool, timeout time.Duration) *net.Dialer {
	return &net.Dialer{
		Timeout: timeout,
		Control: func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return fmt.Errorf("%w: bad address %q", ErrWebhookURL, address)
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("%w: bad address %q", ErrWebhookURL, address)
			}
			if why := addrRefusal(ip, allowLoopback); why != "" {
				return fmt.Errorf("%w: %s: %s", ErrWebhookURL, ip, why)
			}
			return nil
		},
	}
}
