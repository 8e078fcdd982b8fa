package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// SplitJSON validates a JSON request body and returns the messages it
// stores. If the body is a JSON array, each element is one message; only
// one level is flattened, so [[1,2],[3]] yields [1,2] and [3]. Any other
// value is a single message. Messages are compacted, without
// insignificant whitespace.
//
// An empty array yields (nil, nil); whether that is acceptable depends on
// the request. An empty or whitespace-only body, invalid JSON (including
// invalid UTF-8, which RFC 8259 forbids) and trailing data after the value
// are errors.
//
// The returned messages share one backing array, each capped at its own
// length, so appending to one cannot overwrite another.
func SplitJSON(body []byte) ([][]byte, error) {
	if len(bytes.Trim(body, " \t\r\n")) == 0 {
		return nil, errors.New("JSON body must not be empty")
	}
	if !utf8.Valid(body) {
		return nil, errors.New("JSON body must be valid UTF-8")
	}
	// Compact validates the whole body, trailing data included, in one
	// pass without building values, and leaves a form whose top-level
	// elements can be split by a trivial scan.
	var buf bytes.Buffer
	if err := json.Compact(&buf, body); err != nil {
		return nil, jsonError(body, err)
	}
	b := buf.Bytes()
	if b[0] != '[' {
		return [][]byte{b[:len(b):len(b)]}, nil
	}
	if len(b) == 2 { // "[]"
		return nil, nil
	}
	return splitArray(b), nil
}

// JoinJSONRecords groups compact JSON messages, as SplitJSON returns them,
// into records: consecutive messages joined by commas, each record at most
// maxBytes long unless it holds a single larger message. Records joined by
// commas and wrapped in brackets form the JSON array of their messages;
// SplitJSONRecord undoes the grouping.
func JoinJSONRecords(msgs [][]byte, maxBytes int) [][]byte {
	var out [][]byte
	var rec []byte
	for _, m := range msgs {
		if len(rec) > 0 && len(rec)+1+len(m) > maxBytes {
			out = append(out, rec)
			rec = nil
		}
		if len(rec) > 0 {
			rec = append(rec, ',')
		}
		rec = append(rec, m...)
	}
	if len(rec) > 0 {
		out = append(out, rec)
	}
	return out
}

// SplitJSONRecord splits a stored JSON record, compact messages joined by
// commas as JoinJSONRecords made it, into its messages.
func SplitJSONRecord(rec []byte) [][]byte {
	b := make([]byte, 0, len(rec)+2)
	b = append(append(append(b, '['), rec...), ']')
	return splitArray(b)
}

// splitArray splits b, a valid compact JSON array with at least one
// element, into its elements.
func splitArray(b []byte) [][]byte {
	inner := b[1 : len(b)-1]
	msgs := make([][]byte, 0, 1+bytes.Count(inner, []byte{','})/4)
	depth, start := 0, 0
	for i := 0; i < len(inner); i++ {
		switch inner[i] {
		case '"':
			// Skip the string; its contents may hold any delimiter.
			// b is valid JSON, so a closing quote exists.
			i++
			for ; inner[i] != '"'; i++ {
				if inner[i] == '\\' {
					i++
				}
			}
		case '[', '{':
			depth++
		case ']', '}':
			depth--
		case ',':
			if depth == 0 {
				msgs = append(msgs, inner[start:i:i])
				start = i + 1
			}
		}
	}
	return append(msgs, inner[start:len(inner):len(inner)])
}

// jsonError describes why body, which json.Compact rejected with err, is
// invalid. Compact does not record where it failed, so the body is
// validated again to locate the error; this costs a second pass only for
// bad requests.
func jsonError(body []byte, err error) error {
	var raw json.RawMessage
	if uerr := json.Unmarshal(body, &raw); uerr != nil {
		err = uerr
	}
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset > 0 {
		return fmt.Errorf("invalid JSON: %s (at byte %d)", se.Error(), se.Offset)
	}
	return fmt.Errorf("invalid JSON: %s", err.Error())
}
