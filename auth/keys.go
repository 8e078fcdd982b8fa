package auth

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// ParseEd25519PublicKey reads an Ed25519 public key from a PEM "PUBLIC
// KEY" block (PKIX), as written by `openssl pkey -pubout`.
func ParseEd25519PublicKey(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("auth: no PEM block in the public key file")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("auth: PEM block is %q, want \"PUBLIC KEY\"", block.Type)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: parse public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("auth: the public key is %T, want Ed25519", k)
	}
	return pub, nil
}

// ParseEd25519PrivateKey reads an Ed25519 private key from a PEM "PRIVATE
// KEY" block (PKCS #8), as written by `openssl genpkey -algorithm ed25519`.
func ParseEd25519PrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("auth: no PEM block in the private key file")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("auth: PEM block is %q, want \"PRIVATE KEY\"", block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: parse private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("auth: the private key is %T, want Ed25519", k)
	}
	return priv, nil
}
