package auth

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the JWT claims the server reads. exp is required; iat and nbf
// are checked when present.
type Claims struct {
	jwt.RegisteredClaims
	// Scope lists scopes in the OAuth style, space-separated: "read write".
	Scope string `json:"scope,omitempty"`
	// Scopes lists scopes as a JSON array, for issuers that prefer that.
	// The token grants the union of Scope and Scopes.
	Scopes []string `json:"scopes,omitempty"`
	// Prefix limits the token to streams whose path starts with it; empty
	// means every stream.
	Prefix string `json:"prefix,omitempty"`
}

// NewClaims returns claims for a token valid from now for ttl.
func NewClaims(subject string, scopes Scope, prefix string, now time.Time, ttl time.Duration) Claims {
	return Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Scope:  scopes.String(),
		Prefix: prefix,
	}
}

// Sign returns the signed compact JWT of c: HS256 when key is a secret
// ([]byte), EdDSA when it is an ed25519.PrivateKey.
func Sign(c Claims, key any) (string, error) {
	var m jwt.SigningMethod
	switch k := key.(type) {
	case []byte:
		if len(k) < MinHS256SecretLen {
			return "", fmt.Errorf("auth: the HS256 secret has %d bytes, need at least %d", len(k), MinHS256SecretLen)
		}
		m = jwt.SigningMethodHS256
	case ed25519.PrivateKey:
		m = jwt.SigningMethodEdDSA
	default:
		return "", fmt.Errorf("auth: cannot sign with a %T key", key)
	}
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return s, nil
}

var errAlg = errors.New("signing algorithm not accepted")

var (
	errClaimNames  = errors.New("duplicate claim names (claim names are compared without regard to case)")
	errHeaderNames = errors.New("duplicate header parameters (names are compared without regard to case)")
)

// uniqueClaimNames checks that no two top-level members of the compact
// JWT token's header, nor of its claims, have names equal under Unicode
// case folding, the comparison encoding/json uses when it fills Claims.
// The signature has been verified, so the token is the issuer's, but an
// issuer (or a library) that emits both spellings must not get the wider
// reading by accident.
func uniqueClaimNames(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errClaimNames
	}
	if !uniqueNames(parts[0]) {
		return errHeaderNames
	}
	if !uniqueNames(parts[1]) {
		return errClaimNames
	}
	return nil
}

// uniqueNames reports whether the base64url-encoded JSON object seg has
// no two members whose names are equal under strings.EqualFold.
func uniqueNames(seg string) bool {
	data, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	// A signed token has few members; comparing each pair is cheap.
	var seen []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		name, _ := tok.(string)
		for _, k := range seen {
			if strings.EqualFold(k, name) {
				return false
			}
		}
		seen = append(seen, name)
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return false
		}
	}
	return true
}

func (a *Authenticator) parseJWT(token string) (Principal, error) {
	var c Claims
	t, err := a.parser.ParseWithClaims(token, &c, a.key)
	if err != nil {
		var alg string
		if t != nil && t.Method != nil {
			alg = t.Method.Alg()
		}
		return Principal{Anonymous: true}, fmt.Errorf("%w: %s", ErrInvalidToken, a.reason(err, alg))
	}
	// encoding/json matches field names case-insensitively and lets the
	// last duplicate win, so {"prefix":"a/","PREFIX":""} would grant every
	// stream while a checker reading the first "prefix" saw "a/". Such a
	// token has no single meaning; refuse it.
	if err := uniqueClaimNames(t.Raw); err != nil {
		return Principal{Anonymous: true}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	s := ParseScopes(c.Scope)
	for _, name := range c.Scopes {
		sc, _ := ParseScope(name)
		s |= sc
	}
	return Principal{Subject: c.Subject, Scopes: s, Prefix: c.Prefix}, nil
}

// key picks the verification key by the token's algorithm. The parser has
// already refused algorithms without a configured key; checking the key's
// type again costs nothing and keeps a secret from ever verifying an
// asymmetric signature or the other way round.
func (a *Authenticator) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if a.cfg.HS256Secret != nil && t.Method.Alg() == jwt.SigningMethodHS256.Alg() {
			return a.cfg.HS256Secret, nil
		}
	case *jwt.SigningMethodEd25519:
		if a.cfg.EdDSAPublicKey != nil {
			return a.cfg.EdDSAPublicKey, nil
		}
	}
	return nil, errAlg
}

// reason turns a parser error into a short message for the client. It is
// built from fixed strings only, so that nothing of the token (which may
// be a valid credential for something else) is echoed or logged.
func (a *Authenticator) reason(err error, alg string) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, errAlg), errors.Is(err, jwt.ErrTokenUnverifiable),
		errors.Is(err, jwt.ErrTokenSignatureInvalid) && !slices.Contains(a.methods, alg):
		return "signing algorithm not accepted"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token is expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token is not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token is issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token lacks a required claim (exp, and iss or aud when the server checks them)"
	}
	return "invalid claims"
}
