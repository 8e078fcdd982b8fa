package subscriptions

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the request header carrying a webhook's signature:
//
//	Webhook-Signature: t=<unix seconds>,kid=<key id>,ed25519=<base64url signature>
//
// The signature is Ed25519 over "<t>.<raw body>" (protocol section 7.1).
const SignatureHeader = "Webhook-Signature"

// DefaultReplayWindow is how far a signature's timestamp may be from the
// receiver's clock in VerifySignature.
const DefaultReplayWindow = 5 * time.Minute

// tokenTTL bounds a callback or claim token's life. A token is also
// fenced as soon as its wake ends; the expiry only limits a leaked token
// of a wake that a worker keeps alive with heartbeats.
const tokenTTL = 24 * time.Hour

var b64 = base64.RawURLEncoding

// JWK is an Ed25519 public key in JSON Web Key form (RFC 8037).
type JWK struct {
	Kty string `json:"kty"` // "OKP"
	Crv string `json:"crv"` // "Ed25519"
	Kid string `json:"kid"`
	Use string `json:"use"` // "sig"
	Alg string `json:"alg"` // "EdDSA"
	X   string `json:"x"`   // the public key, base64url
}

// JWKS is a JSON Web Key Set, served at JWKSPath.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// keyring holds the server's webhook signing key and callback-token key,
// created at first start and kept in the store.
type keyring struct {
	priv  ed25519.PrivateKey
	kid   string
	jwks  JWKS
	token []byte // HMAC-SHA256 key of callback and claim tokens
}

// kidOf is "ds_" + the RFC 7638 thumbprint of the public key: stable for
// the key's life and derived from it.
func kidOf(pub ed25519.PublicKey) string {
	canon := `{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return "ds_" + b64.EncodeToString(sum[:])
}

func publicJWK(pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", Kid: kidOf(pub), Use: "sig", Alg: "EdDSA", X: b64.EncodeToString(pub)}
}

// loadKeys reads the keys, creating any that are missing. Every Ed25519
// key in the store is published; the newest signs.
func loadKeys(ctx context.Context, st store) (*keyring, error) {
	kr, err := readKeys(ctx, st)
	if err != nil || (kr.priv != nil && kr.token != nil) {
		return kr, err
	}
	// First start: generate what is missing. In a shared store another
	// node may be doing the same; ensureKey keeps the first of each kind
	// and every node then reads the same keys.
	if kr.priv == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		if err := st.ensureKey(ctx, keyRow{kid: kidOf(priv.Public().(ed25519.PublicKey)), kind: "ed25519", secret: priv}); err != nil {
			return nil, err
		}
	}
	if kr.token == nil {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := st.ensureKey(ctx, keyRow{kid: "token", kind: "hmac", secret: key}); err != nil {
			return nil, err
		}
	}
	if kr, err = readKeys(ctx, st); err == nil && (kr.priv == nil || kr.token == nil) {
		err = errors.New("keys missing after they were stored")
	}
	return kr, err
}

// readKeys builds the keyring from the stored keys; a kind not stored
// yet is left nil.
func readKeys(ctx context.Context, st store) (*keyring, error) {
	rows, err := st.keys(ctx)
	if err != nil {
		return nil, err
	}
	kr := &keyring{}
	for _, k := range rows {
		switch k.kind {
		case "ed25519":
			if len(k.secret) != ed25519.PrivateKeySize {
				return nil, fmt.Errorf("key %s: bad size", k.kid)
			}
			kr.priv = ed25519.PrivateKey(k.secret)
			kr.jwks.Keys = append(kr.jwks.Keys, publicJWK(kr.priv.Public().(ed25519.PublicKey)))
		case "hmac":
			kr.token = k.secret
		}
	}
	if kr.priv != nil {
		kr.kid = kidOf(kr.priv.Public().(ed25519.PublicKey))
	}
	return kr, nil
}

// sign returns the SignatureHeader value for body at time now.
func (k *keyring) sign(body []byte, now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	msg := make([]byte, 0, len(ts)+1+len(body))
	msg = append(append(append(msg, ts...), '.'), body...)
	return "t=" + ts + ",kid=" + k.kid + ",ed25519=" + b64.EncodeToString(ed25519.Sign(k.priv, msg))
}

var sigHeader = regexp.MustCompile(`^t=(\d+),kid=([^,]+),ed25519=([A-Za-z0-9_-]+)$`)

// VerifySignature checks a SignatureHeader value against the raw request
// body and a JWKS, as a webhook receiver should: the key is the one named
// by kid, and the timestamp must be within window of now (0: the default
// window).
func VerifySignature(header string, body []byte, set JWKS, now time.Time, window time.Duration) error {
	if window <= 0 {
		window = DefaultReplayWindow
	}
	m := sigHeader.FindStringSubmatch(header)
	if m == nil {
		return errors.New("malformed signature header")
	}
	ts, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return errors.New("malformed timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > window || d < -window {
		return errors.New("timestamp outside the replay window")
	}
	var pub ed25519.PublicKey
	for _, k := range set.Keys {
		if k.Kid == m[2] && k.Kty == "OKP" && k.Crv == "Ed25519" {
			if pub, err = b64.DecodeString(k.X); err != nil || len(pub) != ed25519.PublicKeySize {
				return errors.New("bad key in key set")
			}
		}
	}
	if pub == nil {
		return fmt.Errorf("unknown key id %q", m[2])
	}
	sig, err := b64.DecodeString(m[3])
	if err != nil {
		return errors.New("malformed signature")
	}
	if !ed25519.Verify(pub, []byte(m[1]+"."+string(body)), sig) {
		return errors.New("signature does not verify")
	}
	return nil
}

// tokenClaims are the contents of a callback or claim token: it is valid
// only for one wake (subscription, generation and wake id).
type tokenClaims struct {
	Sub  string `json:"sub"`
	Gen  int64  `json:"gen"`
	Wake string `json:"wake"`
	Exp  int64  `json:"exp"`
}

// issue returns a token for the wake: base64url(claims) "." base64url(HMAC).
func (k *keyring) issue(c tokenClaims) string {
	b, _ := json.Marshal(c)
	p := b64.EncodeToString(b)
	mac := hmac.New(sha256.New, k.token)
	mac.Write([]byte(p))
	return p + "." + b64.EncodeToString(mac.Sum(nil))
}

// parse checks a token's MAC and expiry and returns its claims. The
// error is TOKEN_INVALID or TOKEN_EXPIRED.
func (k *keyring) parse(tok string, now time.Time) (tokenClaims, *Error) {
	var c tokenClaims
	p, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return c, errf(CodeTokenInvalid, "malformed token")
	}
	got, err := b64.DecodeString(sig)
	if err != nil {
		return c, errf(CodeTokenInvalid, "malformed token")
	}
	mac := hmac.New(sha256.New, k.token)
	mac.Write([]byte(p))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return c, errf(CodeTokenInvalid, "token signature does not verify")
	}
	b, err := b64.DecodeString(p)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, errf(CodeTokenInvalid, "malformed token")
	}
	if now.Unix() > c.Exp {
		return c, errf(CodeTokenExpired, "token expired")
	}
	return c, nil
}
