#!/usr/bin/env bash
# Installs a MinIO server binary into <repo>/.tools/bin/minio for the S3
# integration tests (internal/miniotest). Idempotent: does nothing if a
# working binary is already there. Works from any directory.
set -euo pipefail

MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN_DIR="$PWD/.tools/bin"

if [ -x "$BIN_DIR/minio" ] && "$BIN_DIR/minio" --version >/dev/null 2>&1; then
	echo "minio already installed: $BIN_DIR/minio"
	exit 0
fi

mkdir -p "$BIN_DIR"
echo "building github.com/minio/minio@$MINIO_VERSION into $BIN_DIR (this takes several minutes on a cold cache)..."
GOBIN="$BIN_DIR" go install "github.com/minio/minio@$MINIO_VERSION"
"$BIN_DIR/minio" --version >/dev/null
echo "minio installed: $BIN_DIR/minio"
