// Package auth decides who a request comes from and what it may do. A
// request presents "Authorization: Bearer <token>", where the token is
// either the server's static admin token or a JWT (HS256 or EdDSA) whose
// claims carry scopes (read, write, admin) and an optional stream-path
// prefix. Without any configured credential the Authenticator is disabled
// and every request is allowed.
//
// The package knows nothing of HTTP routes; the api package maps each
// route to the scope it needs.
package auth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Config configures an Authenticator. Configuring none of AdminToken,
// HS256Secret and EdDSAPublicKey disables access control.
type Config struct {
	// AdminToken is a static bearer token granting every scope on every
	// stream.
	AdminToken string
	// HS256Secret verifies JWTs signed with HMAC-SHA256; at least 32 bytes.
	HS256Secret []byte
	// EdDSAPublicKey verifies JWTs signed with Ed25519.
	EdDSAPublicKey ed25519.PublicKey
	// Issuer and Audience, when set, must match the JWT's iss and aud.
	Issuer, Audience string
	// PublicRead lists stream-path prefixes anyone may read without
	// credentials; "*" stands for every stream.
	PublicRead []string
	// Leeway tolerates clock skew when checking exp, nbf and iat.
	Leeway time.Duration
	// Now returns the current time (nil: time.Now); for tests.
	Now func() time.Time
}

// MinHS256SecretLen is the shortest accepted HS256 secret: RFC 7518
// requires a key at least as long as the hash output.
const MinHS256SecretLen = 32

// ErrInvalidToken is wrapped by every error about a presented token. The
// messages never contain the token itself.
var ErrInvalidToken = errors.New("invalid token")

// Authenticator checks credentials. A nil *Authenticator is valid and
// disabled.
type Authenticator struct {
	cfg        Config
	adminHash  [sha256.Size]byte
	hasAdmin   bool
	parser     *jwt.Parser // nil without a JWT key
	methods    []string    // the JWT algorithms accepted
	allPublic  bool
	publicRead []string
}

// New checks cfg and builds an Authenticator; without credentials it is
// disabled (see Enabled).
func New(cfg Config) (*Authenticator, error) {
	a := &Authenticator{cfg: cfg}
	if cfg.AdminToken != "" {
		a.hasAdmin = true
		a.adminHash = sha256.Sum256([]byte(cfg.AdminToken))
	}
	var methods []string
	if cfg.HS256Secret != nil {
		if len(cfg.HS256Secret) < MinHS256SecretLen {
			return nil, fmt.Errorf("auth: the HS256 secret has %d bytes, need at least %d", len(cfg.HS256Secret), MinHS256SecretLen)
		}
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.EdDSAPublicKey != nil {
		if len(cfg.EdDSAPublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("auth: an Ed25519 public key has %d bytes, got %d", ed25519.PublicKeySize, len(cfg.EdDSAPublicKey))
		}
		methods = append(methods, jwt.SigningMethodEdDSA.Alg())
	}
	if cfg.Leeway < 0 {
		return nil, errors.New("auth: negative leeway")
	}
	a.methods = methods
	if len(methods) > 0 {
		// Only the algorithms whose key is configured are acceptable: this
		// is what defeats "none" and key-confusion tokens.
		opts := []jwt.ParserOption{
			jwt.WithValidMethods(methods),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithIssuedAt(),
			jwt.WithExpirationRequired(),
		}
		if cfg.Issuer != "" {
			opts = append(opts, jwt.WithIssuer(cfg.Issuer))
		}
		if cfg.Audience != "" {
			opts = append(opts, jwt.WithAudience(cfg.Audience))
		}
		if cfg.Now != nil {
			opts = append(opts, jwt.WithTimeFunc(cfg.Now))
		}
		a.parser = jwt.NewParser(opts...)
	} else if cfg.Issuer != "" || cfg.Audience != "" {
		return nil, errors.New("auth: an issuer or audience needs a JWT key (HS256 secret or EdDSA public key)")
	}
	for _, p := range cfg.PublicRead {
		switch {
		case p == "*":
			a.allPublic = true
		case strings.TrimSpace(p) == "":
			return nil, errors.New(`auth: empty public-read prefix (use "*" for every stream)`)
		default:
			a.publicRead = append(a.publicRead, p)
		}
	}
	if !a.Enabled() && len(cfg.PublicRead) > 0 {
		return nil, errors.New("auth: public-read prefixes need a credential (admin token, HS256 secret or EdDSA key); without one everything is open")
	}
	return a, nil
}

// Enabled reports whether access control is on.
func (a *Authenticator) Enabled() bool {
	return a != nil && (a.hasAdmin || a.parser != nil)
}

// AnonymousRead reports whether the stream at streamPath may be read
// without credentials: always when access control is disabled, otherwise
// when the path is under a public-read prefix.
func (a *Authenticator) AnonymousRead(streamPath string) bool {
	if !a.Enabled() || a.allPublic {
		return true
	}
	for _, p := range a.publicRead {
		if strings.HasPrefix(streamPath, p) {
			return true
		}
	}
	return false
}

// Authenticate checks the value of an Authorization header. Without a
// bearer token (no header, another scheme, an empty token) it returns an
// anonymous principal; with an unacceptable token an error wrapping
// ErrInvalidToken. A disabled Authenticator returns an anonymous principal.
func (a *Authenticator) Authenticate(authorization string) (Principal, error) {
	anon := Principal{Anonymous: true}
	if !a.Enabled() {
		return anon, nil
	}
	scheme, token, _ := strings.Cut(authorization, " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return anon, nil
	}
	if a.hasAdmin {
		// Comparing digests keeps even the token's length secret.
		got := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(got[:], a.adminHash[:]) == 1 {
			return Principal{Subject: "admin", Scopes: AllScopes}, nil
		}
	}
	if a.parser == nil {
		return anon, fmt.Errorf("%w: not the admin token", ErrInvalidToken)
	}
	return a.parseJWT(token)
}
