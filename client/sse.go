package client

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	name string
	data []byte
}

// maxSSEEvent bounds one event's data, so that a broken or hostile server
// cannot make the client buffer without limit. It is far above the
// server's read chunk size (1 MiB by default), even when base64-encoded.
const maxSSEEvent = 64 << 20

var errSSETooLarge = errors.New("SSE event exceeds 64 MiB")

// next reads the next event with a name or data, following the SSE
// format: "field: value" lines, data lines joined with "\n", events ended
// by a blank line, comment lines starting with ":".
func (c *sseConn) next() (sseEvent, error) {
	var ev sseEvent
	var data bytes.Buffer
	hasData := false
	for {
		line, err := c.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if len(line) == 0 {
			if hasData || ev.name != "" {
				if ev.name == "" {
					ev.name = "message"
				}
				ev.data = data.Bytes()
				c.events++
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := bytes.Cut(line, []byte{':'})
		if found && len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "event":
			ev.name = string(value)
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			if data.Len()+len(value) > maxSSEEvent {
				return sseEvent{}, errSSETooLarge
			}
			data.Write(value)
			hasData = true
		}
	}
}

// readLine reads one line without its LF or CRLF terminator. Lines may
// exceed the buffer (a large data line), so they are assembled from
// fragments.
func (c *sseConn) readLine() ([]byte, error) {
	var line []byte
	for {
		frag, err := c.br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		if len(line)+len(frag) > maxSSEEvent {
			return nil, errSSETooLarge
		}
		if err == nil && line == nil {
			line = frag // the common case: no copy beyond the event buffer
		} else {
			line = append(line, frag...)
		}
		if err == nil {
			line = line[:len(line)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return line, nil
		}
	}
}

// decodeBase64 decodes the data of a base64 SSE event, whose lines (if
// the server split it) are joined with "\n".
func decodeBase64(data []byte) ([]byte, error) {
	clean := bytes.ReplaceAll(data, []byte{'\n'}, nil)
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
	n, err := base64.StdEncoding.Decode(out, clean)
	if err != nil {
		return nil, fmt.Errorf("base64: %w", err)
	}
	return out[:n], nil
}
