package segment

// Extent is where one message's data lies in the object: Len bytes at
// object offset Off hold the stream's bytes [Pos, Pos+Len).
type Extent struct {
	Pos, Off, Len int64
}

// Extents returns where the data of the messages of a read lie in the
// object, without reading the body: the messages overlapping [from,
// limit), within budget bytes, with the semantics of [Index.DecodeRange]
// (whole messages, the first always included). The index alone locates
// the data of large messages, each a block of its own; if the read
// involves a block that may hold several records, ok is false and the
// caller reads the body instead ([Reader.Read]).
//
// The extents are not verified against the block checksums: only a
// caller that verified the whole object (its CRC32C) may send them as is.
func (ix *Index) Extents(from, limit int64, budget int) (ext []Extent, ok bool) {
	budget = max(budget, 0)
	from, limit = max(from, ix.Header.Start), min(limit, ix.Header.End)
	if from >= limit {
		return []Extent{}, true
	}
	used := 0
	for k := ix.blockAt(from); k < len(ix.blocks); k++ {
		pos := ix.blocks[k].pos
		if pos >= limit {
			break
		}
		if !ix.single(k) {
			return nil, false
		}
		n := ix.blockEndPos(k) - pos
		if len(ext) > 0 && int64(used)+n > int64(budget) {
			break
		}
		hdr := 1 + int64(uvarintLen(uint64(n)))
		ext = append(ext, Extent{Pos: pos, Off: ix.blocks[k].off + hdr, Len: n})
		used += int(n)
		if used >= budget {
			break
		}
	}
	return ext, true
}
