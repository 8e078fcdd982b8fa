package subscriptions

import (
	"strings"
	"testing"
	"time"
)

func TestSignatureAgainstJWKS(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now()
	body := []byte(`{"subscription_id":"s","generation":1}`)
	hdr := e.m.keys.sign(body, now)
	jwks := e.m.JWKS()
	if len(jwks.Keys) != 1 || !strings.HasPrefix(jwks.Keys[0].Kid, "ds_") || jwks.Keys[0].Alg != "EdDSA" {
		t.Fatalf("JWKS = %+v", jwks)
	}
	other := newEnv(t, nil).m.JWKS() // another server's keys
	for _, tc := range []struct {
		name   string
		header string
		body   []byte
		set    JWKS
		at     time.Time
		ok     bool
	}{
		{"valid", hdr, body, jwks, now, true},
		{"within window", hdr, body, jwks, now.Add(4 * time.Minute), true},
		{"tampered body", hdr, []byte(`{"subscription_id":"t","generation":1}`), jwks, now, false},
		{"other server's keys", hdr, body, other, now, false},
		{"replayed later", hdr, body, jwks, now.Add(6 * time.Minute), false},
		{"malformed", "t=1,kid=x", body, jwks, now, false},
		{"signature of another timestamp", strings.Replace(hdr, "t=", "t=1", 1), body, jwks, now, false},
	} {
		err := VerifySignature(tc.header, tc.body, tc.set, tc.at, 0)
		if (err == nil) != tc.ok {
			t.Errorf("%s: VerifySignature = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestTokens(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now()
	good := e.m.keys.issue(tokenClaims{Sub: "s", Gen: 3, Wake: "w_1", Exp: now.Add(time.Hour).Unix()})
	expired := e.m.keys.issue(tokenClaims{Sub: "s", Gen: 3, Wake: "w_1", Exp: now.Add(-time.Second).Unix()})
	foreign := newEnv(t, nil).m.keys.issue(tokenClaims{Sub: "s", Gen: 3, Wake: "w_1", Exp: now.Add(time.Hour).Unix()})
	for _, tc := range []struct {
		name, tok, code string
	}{
		{"valid", good, ""},
		{"expired", expired, CodeTokenExpired},
		{"another server's", foreign, CodeTokenInvalid},
		{"garbage", "abc", CodeTokenInvalid},
		{"tampered", "x" + good, CodeTokenInvalid},
	} {
		c, err := e.m.keys.parse(tc.tok, now)
		got := ""
		if err != nil {
			got = err.Code
		}
		if got != tc.code {
			t.Errorf("%s: parse error %q, want %q", tc.name, got, tc.code)
		}
		if err == nil && (c.Sub != "s" || c.Gen != 3 || c.Wake != "w_1") {
			t.Errorf("%s: claims %+v", tc.name, c)
		}
	}
}
