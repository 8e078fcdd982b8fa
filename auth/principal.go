package auth

import (
	"context"
	"strings"
)

// Scope is a set of permissions. Scopes combine with |.
type Scope uint8

// The scopes a credential can grant.
const (
	// Read allows GET and HEAD of streams.
	Read Scope = 1 << iota
	// Write allows creating, appending to, forking and deleting streams.
	Write
	// Admin allows everything, including the admin API and /metrics.
	Admin
)

// AllScopes is what the static admin token grants.
const AllScopes = Read | Write | Admin

// Has reports whether s includes every scope of want. Admin implies Read
// and Write.
func (s Scope) Has(want Scope) bool {
	if s&Admin != 0 {
		s |= Read | Write
	}
	return s&want == want
}

// String lists the scopes in the OAuth style: space-separated names.
func (s Scope) String() string {
	var names []string
	for _, n := range scopeNames {
		if s&n.scope != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, " ")
}

var scopeNames = []struct {
	name  string
	scope Scope
}{{"read", Read}, {"write", Write}, {"admin", Admin}}

// ParseScope parses one scope name; ok is false for names this server does
// not know (tokens may carry scopes meant for other services).
func ParseScope(name string) (s Scope, ok bool) {
	for _, n := range scopeNames {
		if n.name == name {
			return n.scope, true
		}
	}
	return 0, false
}

// ParseScopes parses space-separated scope names, ignoring unknown ones.
func ParseScopes(list string) Scope {
	var s Scope
	for _, name := range strings.Fields(list) {
		sc, _ := ParseScope(name)
		s |= sc
	}
	return s
}

// Principal is who made a request and what it may do.
type Principal struct {
	// Subject identifies the client: the token's "sub" claim, or "admin"
	// for the static admin token. It may be empty for tokens without one.
	Subject string
	// Scopes the credential grants.
	Scopes Scope
	// Prefix limits the credential to streams whose path starts with it;
	// empty means every stream.
	Prefix string
	// Anonymous is true when the request carried no credentials.
	Anonymous bool
}

// CanAccess reports whether p may use scope on the stream at path.
func (p Principal) CanAccess(scope Scope, path string) bool {
	return !p.Anonymous && p.Scopes.Has(scope) && strings.HasPrefix(path, p.Prefix)
}

// IsAdmin reports whether p may use the server-wide endpoints (admin API,
// metrics, stream listing). A token limited to a prefix is not enough:
// those endpoints show every stream.
func (p Principal) IsAdmin() bool {
	return !p.Anonymous && p.Scopes.Has(Admin) && p.Prefix == ""
}

type principalKey struct{}

// NewContext returns a copy of ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal the auth middleware stored in a
// request's context. ok is false when there is none, which means that
// access control is disabled and every request is allowed.
func FromContext(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok
}
