package segment

import (
	"hash/crc32"
	"io"
)

// CopyChecked copies a whole object from src to dst (io.Discard to only
// check it) and returns its size and CRC32C, the checksum [Encode] returns
// and the segment index records. If want is not 0 and the CRC32C differs,
// it returns an error wrapping [ErrCorrupt]: the object was truncated or
// damaged in the store or on the way. Errors of src and dst are returned
// as they are.
//
// This is the one whole-object check of the cold tier: the uploader runs it
// on the object it just stored, the disk cache on every download, and the
// admin verifier on every object it reads back.
func CopyChecked(dst io.Writer, src io.Reader, want uint32) (n int64, crc uint32, err error) {
	h := crc32.New(castagnoli)
	n, err = io.Copy(io.MultiWriter(dst, h), src)
	if err != nil {
		return n, 0, err
	}
	crc = h.Sum32()
	if want != 0 && crc != want {
		return n, crc, corrupt("%d bytes with CRC32C %08x, want %08x: truncated or damaged", n, crc, want)
	}
	return n, crc, nil
}
