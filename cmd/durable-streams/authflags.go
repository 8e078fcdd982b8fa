package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/streamtier/durable-streams/auth"
	"github.com/streamtier/durable-streams/auth/ratelimit"
)

// authFlags are the serve flags of access control and rate limiting.
type authFlags struct {
	hs256Secret     string
	hs256SecretFile string
	eddsaKeyFile    string
	publicRead      string
	issuer          string
	audience        string
	leeway          time.Duration
	rate            float64
	burst           int64
	trustProxy      bool
	trustedProxies  string
}

func (a *authFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.hs256Secret, "auth-hs256-secret", envOr("DS_AUTH_HS256_SECRET", ""), "secret (at least 32 bytes) verifying HS256 JWTs; prefer the variable or -auth-hs256-secret-file (DS_AUTH_HS256_SECRET)")
	fs.StringVar(&a.hs256SecretFile, "auth-hs256-secret-file", envOr("DS_AUTH_HS256_SECRET_FILE", ""), "file holding the HS256 secret; a trailing newline is ignored (DS_AUTH_HS256_SECRET_FILE)")
	fs.StringVar(&a.eddsaKeyFile, "auth-eddsa-public-key", envOr("DS_AUTH_EDDSA_PUBLIC_KEY", ""), "PEM file of the Ed25519 public key (PKIX) verifying EdDSA JWTs (DS_AUTH_EDDSA_PUBLIC_KEY)")
	fs.StringVar(&a.publicRead, "auth-public-read", envOr("DS_AUTH_PUBLIC_READ", ""), "comma-separated stream-path prefixes anyone may read without a token; * for all (DS_AUTH_PUBLIC_READ)")
	fs.StringVar(&a.issuer, "auth-issuer", envOr("DS_AUTH_ISSUER", ""), "required iss claim of JWTs; empty: not checked (DS_AUTH_ISSUER)")
	fs.StringVar(&a.audience, "auth-audience", envOr("DS_AUTH_AUDIENCE", ""), "required aud claim of JWTs; empty: not checked (DS_AUTH_AUDIENCE)")
	fs.DurationVar(&a.leeway, "auth-leeway", envDuration("DS_AUTH_LEEWAY", 30*time.Second), "clock skew tolerated in exp, nbf and iat of JWTs (DS_AUTH_LEEWAY)")
	fs.Float64Var(&a.rate, "rate-limit", envFloat("DS_RATE_LIMIT", 0), "requests per second per client (token subject, else address); 0 = no limit (DS_RATE_LIMIT)")
	fs.Int64Var(&a.burst, "rate-burst", envInt("DS_RATE_BURST", 0), "requests a client may make at once; 0 = the rate rounded up (DS_RATE_BURST)")
	fs.BoolVar(&a.trustProxy, "trust-proxy-headers", envBool("DS_TRUST_PROXY_HEADERS", false), "take the client address for per-client limits from the last X-Forwarded-For entry; only when every request comes through a proxy that sets it (DS_TRUST_PROXY_HEADERS)")
	fs.StringVar(&a.trustedProxies, "trusted-proxies", envOr("DS_TRUSTED_PROXIES", ""), "comma-separated networks (CIDR) or addresses of proxies whose X-Forwarded-For names the client for per-client limits; other peers are taken at their address (DS_TRUSTED_PROXIES)")
}

// config reads the key files and builds the auth and rate-limit settings.
func (a *authFlags) config(adminToken string) (auth.Config, ratelimit.Config, error) {
	cfg := auth.Config{AdminToken: adminToken, Issuer: a.issuer, Audience: a.audience, Leeway: a.leeway}
	switch {
	case a.hs256Secret != "" && a.hs256SecretFile != "":
		return cfg, ratelimit.Config{}, errors.New("set -auth-hs256-secret or -auth-hs256-secret-file, not both")
	case a.hs256Secret != "":
		cfg.HS256Secret = []byte(a.hs256Secret)
	case a.hs256SecretFile != "":
		data, err := os.ReadFile(a.hs256SecretFile)
		if err != nil {
			return cfg, ratelimit.Config{}, fmt.Errorf("-auth-hs256-secret-file: %w", err)
		}
		cfg.HS256Secret = []byte(strings.TrimRight(string(data), "\r\n"))
	}
	if a.eddsaKeyFile != "" {
		data, err := os.ReadFile(a.eddsaKeyFile)
		if err != nil {
			return cfg, ratelimit.Config{}, fmt.Errorf("-auth-eddsa-public-key: %w", err)
		}
		if cfg.EdDSAPublicKey, err = auth.ParseEd25519PublicKey(data); err != nil {
			return cfg, ratelimit.Config{}, fmt.Errorf("-auth-eddsa-public-key %s: %w", a.eddsaKeyFile, err)
		}
	}
	for p := range strings.SplitSeq(a.publicRead, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.PublicRead = append(cfg.PublicRead, p)
		}
	}
	nets, err := ratelimit.ParsePrefixes(a.trustedProxies)
	if err != nil {
		return cfg, ratelimit.Config{}, fmt.Errorf("-trusted-proxies: %w", err)
	}
	rl := ratelimit.Config{Rate: a.rate, Burst: int(a.burst), TrustProxyHeaders: a.trustProxy, TrustedProxies: nets}
	return cfg, rl, nil
}

// warnIfOpen tells the operator when anyone who can reach the server may
// do anything with it.
func warnIfOpen(lg *slog.Logger, addr net.Addr, authOn bool) {
	if authOn {
		lg.Info("access control on")
		return
	}
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsLoopback() {
		lg.Info("access control off: no credentials configured; the server listens on loopback only")
		return
	}
	lg.Warn("access control off: anyone who can reach this address can read, write and delete every stream and use the admin API; "+
		"set DS_ADMIN_TOKEN and DS_AUTH_HS256_SECRET_FILE or DS_AUTH_EDDSA_PUBLIC_KEY (see docs/auth.md)", "addr", addr.String())
}

func envFloat(key string, def float64) float64 {
	if n, err := strconv.ParseFloat(envOr(key, ""), 64); err == nil {
		return n
	}
	return def
}
