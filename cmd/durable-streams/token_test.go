package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/streamtier/durable-streams/auth"
	"github.com/streamtier/durable-streams/server"
)

const cliSecret = "cli-secret-cli-secret-cli-secret-0123"

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTokenCommand(t *testing.T) {
	t.Setenv("DS_AUTH_HS256_SECRET", "")
	t.Setenv("DS_AUTH_HS256_SECRET_FILE", "")
	secretFile := writeFile(t, "secret", []byte(cliSecret+"\n"))
	code, out, errs := cli(t, "token", "--hs256-secret-file", secretFile, "--scope", "read write", "--prefix", "p/", "--subject", "svc", "--ttl", "10m")
	if code != exitOK {
		t.Fatalf("token: %d %s", code, errs)
	}
	a, err := auth.New(auth.Config{HS256Secret: []byte(cliSecret)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate("Bearer " + strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("the printed token does not verify: %v", err)
	}
	if want := (auth.Principal{Subject: "svc", Scopes: auth.Read | auth.Write, Prefix: "p/"}); p != want {
		t.Fatalf("principal %+v, want %+v", p, want)
	}

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, "key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	code, out, errs = cli(t, "token", "--eddsa-private-key", keyFile, "--scope", "admin", "--issuer", "me", "--audience", "ds")
	if code != exitOK {
		t.Fatalf("token with EdDSA: %d %s", code, errs)
	}
	a, err = auth.New(auth.Config{EdDSAPublicKey: pub, Issuer: "me", Audience: "ds"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = a.Authenticate("Bearer " + strings.TrimSpace(out)); err != nil || !p.IsAdmin() {
		t.Fatalf("EdDSA token: %+v %v", p, err)
	}

	for _, args := range [][]string{
		{"token"},
		{"token", "--hs256-secret", cliSecret, "--hs256-secret-file", secretFile},
		{"token", "--hs256-secret", cliSecret, "--scope", "read sudo"},
		{"token", "--hs256-secret", cliSecret, "--ttl", "-1h"},
		{"token", "--hs256-secret", cliSecret, "extra"},
	} {
		if code, _, errs := cli(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, errs)
		}
	}
	if code, _, _ := cli(t, "token", "--hs256-secret", "short"); code != exitError {
		t.Errorf("a short secret: exit %d", code)
	}
}

func TestAuthFlags(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := writeFile(t, "pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	secretFile := writeFile(t, "secret", []byte(cliSecret+"\r\n"))

	f := authFlags{hs256SecretFile: secretFile, eddsaKeyFile: pubFile, publicRead: " pub/, docs/ ,,", rate: 5, burst: 10, trustProxy: true,
		trustedProxies: "10.0.0.0/8, 192.0.2.1"}
	a, rl, err := f.config("adm")
	if err != nil {
		t.Fatal(err)
	}
	if string(a.HS256Secret) != cliSecret || !a.EdDSAPublicKey.Equal(pub) || a.AdminToken != "adm" {
		t.Fatalf("auth config %+v", a)
	}
	if len(a.PublicRead) != 2 || a.PublicRead[0] != "pub/" || a.PublicRead[1] != "docs/" {
		t.Fatalf("public read %q", a.PublicRead)
	}
	if rl.Rate != 5 || rl.Burst != 10 || !rl.TrustProxyHeaders || len(rl.TrustedProxies) != 2 || rl.TrustedProxies[1].String() != "192.0.2.1/32" {
		t.Fatalf("rate limit %+v", rl)
	}
	for name, f := range map[string]authFlags{
		"both secrets":    {hs256Secret: cliSecret, hs256SecretFile: secretFile},
		"missing secret":  {hs256SecretFile: filepath.Join(t.TempDir(), "nope")},
		"missing key":     {eddsaKeyFile: filepath.Join(t.TempDir(), "nope")},
		"key not PEM":     {eddsaKeyFile: secretFile},
		"key is a secret": {eddsaKeyFile: writeFile(t, "x.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte(cliSecret)}))},
		"bad proxy":       {trustedProxies: "10.0.0.0/40"},
	} {
		if _, _, err := f.config(""); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A public-read prefix without any credential is a configuration
	// error: serve refuses it rather than run open.
	code, _, errs := cli(t, "serve", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0", "--auth-public-read", "pub/")
	if code != exitUsage || !strings.Contains(errs, "public-read") {
		t.Errorf("serve with public-read only: %d %s", code, errs)
	}
}

func TestWarnIfOpen(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		authOn bool
		warn   bool
	}{
		{"127.0.0.1:4437", false, false},
		{"[::1]:4437", false, false},
		{"0.0.0.0:4437", false, true},
		{"192.0.2.10:4437", false, true},
		{"0.0.0.0:4437", true, false},
	} {
		var buf bytes.Buffer
		lg := slog.New(slog.NewTextHandler(&buf, nil))
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		warnIfOpen(lg, addr, tc.authOn)
		if got := strings.Contains(buf.String(), "level=WARN"); got != tc.warn {
			t.Errorf("%s auth %v: warned %v: %s", tc.addr, tc.authOn, got, buf.String())
		}
	}
}

// TestServeLimitFlags: a limit flag's 0 turns the bound off (negative in
// server.Limits), other values pass through, and the defaults are
// server.DefaultLimits'.
func TestServeLimitFlags(t *testing.T) {
	f := serveFlags{readHeaderTimeout: 0, connIdleTimeout: 5 * time.Second, bodyMinRate: 0, bodyReadGrace: 3 * time.Second,
		maxConns: 0, maxConnsPerClient: 7, maxBodyBytes: 100, maxBodyPerClient: 0}
	got := f.limits()
	want := server.Limits{ReadHeaderTimeout: -1, ConnIdleTimeout: 5 * time.Second, BodyMinRate: -1, BodyReadGrace: 3 * time.Second,
		MaxConns: -1, MaxConnsPerClient: 7, MaxBodyBytes: 100, MaxBodyBytesPerClient: -1}
	if got != want {
		t.Fatalf("limits() = %+v, want %+v", got, want)
	}
	// The help text shows the defaults.
	_, _, errs := cli(t, "serve", "-h")
	for _, s := range []string{"-body-min-rate", "(default 1024)", "-conn-idle-timeout", "(default 2m0s)", "-max-inflight-body-bytes-per-client", "(default 67108864)"} {
		if !strings.Contains(errs, s) {
			t.Errorf("serve -h lacks %q", s)
		}
	}
}
