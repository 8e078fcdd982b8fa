package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/streamtier/durable-streams/auth"
)

// token prints a signed JWT for the server's access control (see
// docs/auth.md): a tool for operators and tests, not an identity provider.
func token(args []string, stdout, stderr io.Writer) error {
	var (
		secret, secretFile, keyFile string
		scope, prefix, subject      string
		issuer, audience            string
		ttl                         time.Duration
	)
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: durable-streams token [flags]   print a signed JWT")
		fs.PrintDefaults()
	}
	fs.StringVar(&secret, "hs256-secret", envOr("DS_AUTH_HS256_SECRET", ""), "sign with HS256 and this secret (DS_AUTH_HS256_SECRET)")
	fs.StringVar(&secretFile, "hs256-secret-file", envOr("DS_AUTH_HS256_SECRET_FILE", ""), "sign with HS256 and the secret in this file (DS_AUTH_HS256_SECRET_FILE)")
	fs.StringVar(&keyFile, "eddsa-private-key", "", "sign with EdDSA and this PEM Ed25519 private key (PKCS #8)")
	fs.StringVar(&scope, "scope", "read", `space-separated scopes: read, write, admin`)
	fs.StringVar(&prefix, "prefix", "", "limit the token to streams under this path prefix; empty: all streams")
	fs.StringVar(&subject, "subject", "cli", "sub claim: the client's name, also its rate-limit key")
	fs.StringVar(&issuer, "issuer", envOr("DS_AUTH_ISSUER", ""), "iss claim (DS_AUTH_ISSUER)")
	fs.StringVar(&audience, "audience", envOr("DS_AUTH_AUDIENCE", ""), "aud claim (DS_AUTH_AUDIENCE)")
	fs.DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	if err := flagError(fs.Parse(args)); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("token: unexpected argument %q", fs.Arg(0))}
	}
	if ttl <= 0 {
		return usageError{errors.New("token: -ttl must be positive")}
	}
	for _, name := range strings.Fields(scope) {
		if _, ok := auth.ParseScope(name); !ok {
			return usageError{fmt.Errorf("token: unknown scope %q (want read, write or admin)", name)}
		}
	}
	var key any
	switch {
	case btoi(secret != "")+btoi(secretFile != "")+btoi(keyFile != "") != 1:
		return usageError{errors.New("token: give exactly one of -hs256-secret, -hs256-secret-file and -eddsa-private-key")}
	case secret != "":
		key = []byte(secret)
	case secretFile != "":
		data, err := os.ReadFile(secretFile)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		key = []byte(strings.TrimRight(string(data), "\r\n"))
	default:
		data, err := os.ReadFile(keyFile)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		if key, err = auth.ParseEd25519PrivateKey(data); err != nil {
			return fmt.Errorf("token: %s: %w", keyFile, err)
		}
	}
	c := auth.NewClaims(subject, auth.ParseScopes(scope), prefix, time.Now(), ttl)
	c.Issuer = issuer
	if audience != "" {
		c.Audience = jwt.ClaimStrings{audience}
	}
	s, err := auth.Sign(c, key)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, s)
	return err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
