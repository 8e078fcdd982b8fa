package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/streamtier/durable-streams/auth"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	now    = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
)

func edKeys(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

func newAuth(t *testing.T, cfg auth.Config) *auth.Authenticator {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return now }
	}
	a, err := auth.New(cfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	return a
}

func sign(t *testing.T, c auth.Claims, key any) string {
	t.Helper()
	s, err := auth.Sign(c, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signRaw signs with any method and key, for tokens the server must refuse.
func signRaw(t *testing.T, m jwt.SigningMethod, c jwt.Claims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDisabled(t *testing.T) {
	for _, a := range []*auth.Authenticator{nil, newAuth(t, auth.Config{})} {
		if a.Enabled() {
			t.Fatal("enabled without credentials")
		}
		if !a.AnonymousRead("any/path") {
			t.Fatal("a disabled authenticator refuses anonymous reads")
		}
		p, err := a.Authenticate("Bearer whatever")
		if err != nil || !p.Anonymous {
			t.Fatalf("disabled: %+v %v", p, err)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	pub, _ := edKeys(t)
	for _, tc := range []struct {
		name string
		cfg  auth.Config
	}{
		{"short secret", auth.Config{HS256Secret: []byte("short")}},
		{"empty secret", auth.Config{HS256Secret: []byte{}}},
		{"truncated key", auth.Config{EdDSAPublicKey: pub[:16]}},
		{"issuer without key", auth.Config{AdminToken: "t", Issuer: "me"}},
		{"audience without key", auth.Config{Audience: "ds"}},
		{"public read without credentials", auth.Config{PublicRead: []string{"pub/"}}},
		{"empty public prefix", auth.Config{AdminToken: "t", PublicRead: []string{""}}},
		{"negative leeway", auth.Config{HS256Secret: secret, Leeway: -time.Second}},
	} {
		if _, err := auth.New(tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestAdminToken(t *testing.T) {
	a := newAuth(t, auth.Config{AdminToken: "the-admin-token"})
	for _, tc := range []struct {
		header  string
		anon    bool
		invalid bool
	}{
		{"", true, false},
		{"Basic dXNlcjpwYXNz", true, false},
		{"Bearer ", true, false},
		{"Bearer the-admin-token", false, false},
		{"bearer the-admin-token", false, false},
		{"Bearer  the-admin-token ", false, false},
		{"Bearer the-admin-toke", true, true},
		{"Bearer the-admin-token2", true, true},
	} {
		p, err := a.Authenticate(tc.header)
		if tc.invalid != (err != nil) || p.Anonymous != tc.anon {
			t.Errorf("%q: %+v %v", tc.header, p, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidToken) || strings.Contains(err.Error(), "the-admin-tok") {
				t.Errorf("%q: error %q", tc.header, err)
			}
			continue
		}
		if !tc.anon && (!p.IsAdmin() || !p.CanAccess(auth.Write, "x") || !p.CanAccess(auth.Read, "y/z")) {
			t.Errorf("%q: the admin token does not grant everything: %+v", tc.header, p)
		}
	}
}

func TestJWT(t *testing.T) {
	pub, priv := edKeys(t)
	_, otherPriv := edKeys(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	a := newAuth(t, auth.Config{HS256Secret: secret, EdDSAPublicKey: pub, Issuer: "issuer", Audience: "ds", Leeway: 5 * time.Second})
	edOnly := newAuth(t, auth.Config{EdDSAPublicKey: pub})

	good := func() auth.Claims {
		c := auth.NewClaims("alice", auth.Read|auth.Write, "alice/", now, time.Hour)
		c.Issuer, c.Audience = "issuer", jwt.ClaimStrings{"ds"}
		return c
	}
	with := func(f func(*auth.Claims)) auth.Claims {
		c := good()
		f(&c)
		return c
	}
	noneToken := signRaw(t, jwt.SigningMethodNone, good(), jwt.UnsafeAllowNoneSignatureType)

	for _, tc := range []struct {
		name   string
		a      *auth.Authenticator
		token  string
		reason string // "" means valid
		want   auth.Principal
	}{
		{"hs256", a, sign(t, good(), secret), "", auth.Principal{Subject: "alice", Scopes: auth.Read | auth.Write, Prefix: "alice/"}},
		{"eddsa", a, sign(t, good(), priv), "", auth.Principal{Subject: "alice", Scopes: auth.Read | auth.Write, Prefix: "alice/"}},
		{"scopes array", a, sign(t, with(func(c *auth.Claims) { c.Scope, c.Scopes = "", []string{"admin", "other"} }), secret), "",
			auth.Principal{Subject: "alice", Scopes: auth.Admin, Prefix: "alice/"}},
		{"scope and scopes merge", a, sign(t, with(func(c *auth.Claims) { c.Scope, c.Scopes = "read openid", []string{"write"} }), secret), "",
			auth.Principal{Subject: "alice", Scopes: auth.Read | auth.Write, Prefix: "alice/"}},
		{"within leeway", a, sign(t, with(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-3 * time.Second)) }), secret), "",
			auth.Principal{Subject: "alice", Scopes: auth.Read | auth.Write, Prefix: "alice/"}},

		{"expired", a, sign(t, with(func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) }), secret), "token is expired", auth.Principal{}},
		{"no exp", a, sign(t, with(func(c *auth.Claims) { c.ExpiresAt = nil }), secret), "lacks a required claim", auth.Principal{}},
		{"not yet valid", a, sign(t, with(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Minute)) }), secret), "not valid yet", auth.Principal{}},
		{"issued in the future", a, sign(t, with(func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Minute)) }), secret), "issued in the future", auth.Principal{}},
		{"wrong issuer", a, sign(t, with(func(c *auth.Claims) { c.Issuer = "mallory" }), secret), "wrong issuer", auth.Principal{}},
		{"no issuer", a, sign(t, with(func(c *auth.Claims) { c.Issuer = "" }), secret), "lacks a required claim", auth.Principal{}},
		{"wrong audience", a, sign(t, with(func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other"} }), secret), "wrong audience", auth.Principal{}},
		{"bad hs256 signature", a, sign(t, good(), []byte("another-secret-another-secret-xx")), "bad signature", auth.Principal{}},
		{"bad eddsa signature", a, sign(t, good(), otherPriv), "bad signature", auth.Principal{}},
		{"tampered claims", a, tamper(t, sign(t, good(), secret)), "bad signature", auth.Principal{}},
		{"alg none", a, noneToken, "algorithm not accepted", auth.Principal{}},
		{"rs256", a, signRaw(t, jwt.SigningMethodRS256, good(), rsaKey), "algorithm not accepted", auth.Principal{}},
		{"hs512", a, signRaw(t, jwt.SigningMethodHS512, good(), secret), "algorithm not accepted", auth.Principal{}},
		{"hs256 signed with the public key", edOnly, signRaw(t, jwt.SigningMethodHS256, good(), []byte(pub)), "algorithm not accepted", auth.Principal{}},
		{"hs256 signed with the public key PEM", edOnly, signRaw(t, jwt.SigningMethodHS256, good(), pubPEM), "algorithm not accepted", auth.Principal{}},
		{"hs256 with the public key, both keys set", a, signRaw(t, jwt.SigningMethodHS256, good(), []byte(pub)), "bad signature", auth.Principal{}},
		{"garbage", a, "not.a.jwt", "malformed", auth.Principal{}},
		{"one part", a, "abc", "malformed", auth.Principal{}},
	} {
		p, err := tc.a.Authenticate("Bearer " + tc.token)
		if tc.reason == "" {
			if err != nil || p != tc.want {
				t.Errorf("%s: %+v %v, want %+v", tc.name, p, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted: %+v", tc.name, p)
			continue
		}
		if !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: error %q, want one containing %q", tc.name, err, tc.reason)
		}
		if !p.Anonymous {
			t.Errorf("%s: a refused token yields a non-anonymous principal %+v", tc.name, p)
		}
		if len(tc.token) > 8 && strings.Contains(err.Error(), tc.token[len(tc.token)-8:]) {
			t.Errorf("%s: the error echoes the token: %q", tc.name, err)
		}
	}
}

// tamper raises the token's scopes without re-signing it.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), `"read write"`, `"admin"`, 1)))
	return strings.Join(parts, ".")
}

func TestPrincipal(t *testing.T) {
	for _, tc := range []struct {
		p     auth.Principal
		scope auth.Scope
		path  string
		want  bool
	}{
		{auth.Principal{Scopes: auth.Read}, auth.Read, "a", true},
		{auth.Principal{Scopes: auth.Read}, auth.Write, "a", false},
		{auth.Principal{Scopes: auth.Write}, auth.Read, "a", false},
		{auth.Principal{Scopes: auth.Admin}, auth.Read, "a", true},
		{auth.Principal{Scopes: auth.Admin}, auth.Write, "a", true},
		{auth.Principal{Scopes: auth.Read, Prefix: "t1/"}, auth.Read, "t1/x", true},
		{auth.Principal{Scopes: auth.Read, Prefix: "t1/"}, auth.Read, "t10/x", false},
		{auth.Principal{Scopes: auth.Read, Prefix: "t1/"}, auth.Read, "t1", false},
		{auth.Principal{Scopes: auth.Read | auth.Write, Anonymous: true}, auth.Read, "a", false},
		{auth.Principal{}, auth.Read, "a", false},
	} {
		if got := tc.p.CanAccess(tc.scope, tc.path); got != tc.want {
			t.Errorf("%+v CanAccess(%v, %q) = %v", tc.p, tc.scope, tc.path, got)
		}
	}
	if (auth.Principal{Scopes: auth.Admin, Prefix: "p/"}).IsAdmin() {
		t.Error("an admin token limited to a prefix is a server admin")
	}
	if got := (auth.Read | auth.Admin).String(); got != "read admin" {
		t.Errorf("String: %q", got)
	}
	if got := auth.ParseScopes(" write  read bogus "); got != auth.Read|auth.Write {
		t.Errorf("ParseScopes: %v", got)
	}
}

func TestAnonymousRead(t *testing.T) {
	a := newAuth(t, auth.Config{AdminToken: "t", PublicRead: []string{"pub/", "docs"}})
	for path, want := range map[string]bool{"pub/x": true, "pub": false, "docs": true, "docs2/a": true, "private/x": false} {
		if got := a.AnonymousRead(path); got != want {
			t.Errorf("AnonymousRead(%q) = %v", path, got)
		}
	}
	if !newAuth(t, auth.Config{AdminToken: "t", PublicRead: []string{"*"}}).AnonymousRead("any") {
		t.Error(`"*" does not make everything public`)
	}
}

func TestContext(t *testing.T) {
	if _, ok := auth.FromContext(context.Background()); ok {
		t.Fatal("principal in an empty context")
	}
	want := auth.Principal{Subject: "s", Scopes: auth.Read, Prefix: "p/"}
	got, ok := auth.FromContext(auth.NewContext(context.Background(), want))
	if !ok || got != want {
		t.Fatalf("FromContext: %+v %v", got, ok)
	}
}

func TestKeys(t *testing.T) {
	pub, priv := edKeys(t)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	got, err := auth.ParseEd25519PublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil || !got.Equal(pub) {
		t.Fatalf("public key: %v", err)
	}
	pder, _ := x509.MarshalPKCS8PrivateKey(priv)
	gotPriv, err := auth.ParseEd25519PrivateKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pder}))
	if err != nil || !gotPriv.Equal(priv) {
		t.Fatalf("private key: %v", err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	rder, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	for name, data := range map[string][]byte{
		"not PEM":    []byte("hello"),
		"wrong type": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		"RSA key":    pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rder}),
		"bad DER":    pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}),
	} {
		if _, err := auth.ParseEd25519PublicKey(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := auth.Sign(auth.Claims{}, []byte("short")); err == nil {
		t.Error("signed with a short secret")
	}
	if _, err := auth.Sign(auth.Claims{}, "a string"); err == nil {
		t.Error("signed with a string key")
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	a, err := auth.New(auth.Config{AdminToken: "admin-token", HS256Secret: secret, EdDSAPublicKey: pub})
	if err != nil {
		b.Fatal(err)
	}
	c := auth.NewClaims("s", auth.Read, "p/", time.Now(), time.Hour)
	hs, _ := auth.Sign(c, secret)
	ed, _ := auth.Sign(c, priv)
	for _, bc := range []struct{ name, header string }{
		{"anonymous", ""}, {"admin token", "Bearer admin-token"}, {"hs256", "Bearer " + hs}, {"eddsa", "Bearer " + ed},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := a.Authenticate(bc.header); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// signPayload signs a hand-written JSON payload with HS256, for payloads
// that no claims type can produce (such as duplicate names).
func signPayload(t *testing.T, payload string) string {
	t.Helper()
	return signWithHeader(t, `{"alg":"HS256","typ":"JWT"}`, payload)
}

// signWithHeader is signPayload with a hand-written header too.
func signWithHeader(t *testing.T, header, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	unsigned := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(unsigned, secret)
	if err != nil {
		t.Fatal(err)
	}
	return unsigned + "." + enc.EncodeToString(sig)
}

// TestJWTDuplicateClaimNames: a token naming a claim twice, in the same
// or another case, has no single meaning (encoding/json would take the
// last spelling, another reader the first) and is refused.
func TestJWTDuplicateClaimNames(t *testing.T) {
	a := newAuth(t, auth.Config{HS256Secret: secret})
	exp := now.Add(time.Hour).Unix()
	claims := func(extra string) string {
		return `{"sub":"alice","scope":"read write","exp":` + strconv.FormatInt(exp, 10) + extra + `}`
	}
	for _, tc := range []struct {
		name    string
		payload string
		ok      bool
	}{
		{"plain", claims(`,"prefix":"alice/"`), true},
		{"distinct names", claims(`,"prefix":"alice/","prefixes":"x"`), true},
		{"case variant", claims(`,"prefix":"alice/","PREFIX":""`), false},
		{"exact duplicate", claims(`,"prefix":"alice/","prefix":""`), false},
		{"duplicate scope", claims(`,"Scope":"admin"`), false},
		{"duplicate exp", claims(`,"EXP":99999999999`), false},
		{"kelvin sign folds to k", `{"k":1,"\u212a":2,"sub":"a","exp":` + strconv.FormatInt(exp, 10) + `}`, false},
		{"nested names are not claims", claims(`,"prefix":"alice/","x":{"a":1,"A":2}`), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.Authenticate("Bearer " + signPayload(t, tc.payload))
			if tc.ok {
				if err != nil || p.Prefix != "alice/" {
					t.Fatalf("Authenticate = %+v, %v; want prefix alice/", p, err)
				}
				return
			}
			if !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "duplicate claim names") {
				t.Fatalf("Authenticate = %+v, %v; want a duplicate-claims error", p, err)
			}
			if !p.Anonymous {
				t.Errorf("principal %+v is not anonymous", p)
			}
		})
	}
	// Header parameters too.
	tok := signWithHeader(t, `{"alg":"HS256","typ":"JWT","ALG":"none"}`, claims(`,"prefix":"alice/"`))
	if _, err := a.Authenticate("Bearer " + tok); err == nil || !strings.Contains(err.Error(), "duplicate header parameters") {
		t.Fatalf("duplicate header parameter: %v", err)
	}
}
