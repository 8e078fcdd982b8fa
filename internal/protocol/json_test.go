package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestSplitJSON(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []string
		wantErr string // substring; "" means success
	}{
		{"object", `{"a": 1, "b": [1, 2]}`, []string{`{"a":1,"b":[1,2]}`}, ""},
		{"empty object", `{}`, []string{`{}`}, ""},
		{"number", `42`, []string{`42`}, ""},
		{"negative float", ` -1.5e10 `, []string{`-1.5e10`}, ""},
		{"true", `true`, []string{`true`}, ""},
		{"null", `null`, []string{`null`}, ""},
		{"string", `"hi"`, []string{`"hi"`}, ""},
		{"string newline escapes", `"line1\nline2\r\n"`, []string{`"line1\nline2\r\n"`}, ""},
		{"string with delimiters", `["a,b", "[c]", "{d}", "\"e,\\"]`, []string{`"a,b"`, `"[c]"`, `"{d}"`, `"\"e,\\"`}, ""},
		{"string keeps spaces", `{ "a b" : " c " }`, []string{`{"a b":" c "}`}, ""},
		{"unicode", `["ünï", "\u00fc", "😀"]`, []string{`"ünï"`, `"\u00fc"`, `"😀"`}, ""},
		{"no html escaping", `"<a&b>"`, []string{`"<a&b>"`}, ""},
		{"array", `[1, 2, 3]`, []string{`1`, `2`, `3`}, ""},
		{"array of objects", `[{"a":1},{"b":[2,3]}]`, []string{`{"a":1}`, `{"b":[2,3]}`}, ""},
		{"flatten one level", `[[1,2],[3]]`, []string{`[1,2]`, `[3]`}, ""},
		{"nested arrays", `[[[1,2,3]]]`, []string{`[[1,2,3]]`}, ""},
		{"nested empty array", `[[]]`, []string{`[]`}, ""},
		{"mixed", `[1, "x", null, {"k": [1, {"z": []}]}, [true], false]`,
			[]string{`1`, `"x"`, `null`, `{"k":[1,{"z":[]}]}`, `[true]`, `false`}, ""},
		{"whitespace", " \t\r\n[ 1 ,\n\t2 ] \n", []string{`1`, `2`}, ""},
		{"single element", `["only"]`, []string{`"only"`}, ""},
		{"empty array", `[]`, nil, ""},
		{"empty array spaced", " [ \n ] ", nil, ""},

		{"empty body", ``, nil, "empty"},
		{"whitespace body", " \n\t\r ", nil, "empty"},
		{"invalid", `{"a":}`, nil, "invalid JSON"},
		{"unterminated", `[1, 2`, nil, "invalid JSON"},
		{"unterminated string", `"abc`, nil, "invalid JSON"},
		{"trailing comma", `[1, 2,]`, nil, "invalid JSON"},
		{"trailing garbage", `{"a":1} x`, nil, "invalid JSON"},
		{"two values", `1 2`, nil, "invalid JSON"},
		{"two arrays", `[1][2]`, nil, "invalid JSON"},
		{"single quotes", `'a'`, nil, "invalid JSON"},
		{"bare word", `hello`, nil, "invalid JSON"},
		{"NaN", `NaN`, nil, "invalid JSON"},
		{"leading zero", `01`, nil, "invalid JSON"},
		{"raw newline in string", "\"a\nb\"", nil, "invalid JSON"},
		{"bad escape", `"\x"`, nil, "invalid JSON"},
		{"BOM", "\ufeff[1]", nil, "invalid JSON"},
		{"NUL", "[1]\x00", nil, "invalid JSON"},
		{"invalid UTF-8", "[\"\xff\"]", nil, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SplitJSON([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got %q; want error containing %q", got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q; want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			var strs []string
			for _, m := range got {
				strs = append(strs, string(m))
			}
			if !reflect.DeepEqual(strs, tt.want) {
				t.Fatalf("got %q; want %q", strs, tt.want)
			}
			if tt.want == nil && got != nil {
				t.Fatalf("got non-nil empty result %#v", got)
			}
		})
	}
}

func TestSplitJSONErrorLocation(t *testing.T) {
	_, err := SplitJSON([]byte(`[1, 2, x]`))
	if err == nil || !strings.Contains(err.Error(), "at byte 8") {
		t.Errorf("error = %v; want it to locate the bad byte", err)
	}
}

// TestSplitJSONAliasing checks that appending to one message cannot
// overwrite the next, although they share a backing array.
func TestSplitJSONAliasing(t *testing.T) {
	msgs, err := SplitJSON([]byte(`[1,2,3]`))
	if err != nil {
		t.Fatal(err)
	}
	_ = append(msgs[0], "xxxx"...)
	if string(msgs[1]) != "2" || string(msgs[2]) != "3" {
		t.Errorf("messages after append: %q", msgs)
	}
}

func TestSplitJSONLarge(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("[\n")
	const n = 50000
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, `  {"i": %d, "s": "a, [b] {c} \"d\"", "n": [%d, {"x": null}]}`, i, i)
	}
	b.WriteString("\n]")
	msgs, err := SplitJSON(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("got %d messages; want %d", len(msgs), n)
	}
	for _, i := range []int{0, 1, n / 2, n - 1} {
		want := fmt.Sprintf(`{"i":%d,"s":"a, [b] {c} \"d\"","n":[%d,{"x":null}]}`, i, i)
		if string(msgs[i]) != want {
			t.Errorf("message %d = %s; want %s", i, msgs[i], want)
		}
	}
}

func BenchmarkSplitJSON(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := 0; buf.Len() < 8<<20; i++ {
		if i > 0 {
			buf.WriteString(", ")
		}
		fmt.Fprintf(&buf, `{"id": %d, "name": "item %d", "tags": ["a", "b"], "ok": true}`, i, i)
	}
	buf.WriteByte(']')
	body := buf.Bytes()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := SplitJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzSplitJSON checks that SplitJSON never panics, that every message it
// returns is valid compact JSON, and that the messages agree with what
// encoding/json makes of the body.
func FuzzSplitJSON(f *testing.F) {
	for _, s := range []string{`{"a": 1}`, `42`, `"a\nb"`, `[1, 2]`, `[[1,2],[3]]`, `[[[1,2,3]]]`,
		`[]`, ` [ ] `, `[`, `{"a":}`, `1 2`, ``, ` `, `["a,b", "]", "\\\""]`, "[\"\xff\"]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := SplitJSON(body)
		if err != nil {
			if msgs != nil {
				t.Fatalf("SplitJSON(%q) = %q with error", body, msgs)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("SplitJSON(%q) accepted invalid JSON", body)
		}
		parts := make([]string, len(msgs))
		for i, m := range msgs {
			if !json.Valid(m) {
				t.Fatalf("SplitJSON(%q): message %d %q is not valid JSON", body, i, m)
			}
			var c bytes.Buffer
			if err := json.Compact(&c, m); err != nil || !bytes.Equal(c.Bytes(), m) {
				t.Fatalf("SplitJSON(%q): message %d %q is not compact", body, i, m)
			}
			parts[i] = string(m)
		}
		joined := "[" + strings.Join(parts, ",") + "]"
		if !json.Valid([]byte(joined)) {
			t.Fatalf("SplitJSON(%q): joined messages %q are not valid JSON", body, joined)
		}

		// The messages must be the elements encoding/json sees.
		var elems []json.RawMessage
		if bytes.Trim(body, " \t\r\n")[0] == '[' {
			if err := json.Unmarshal(body, &elems); err != nil {
				t.Fatalf("SplitJSON(%q) accepted what json.Unmarshal rejects: %v", body, err)
			}
			if len(elems) != len(msgs) {
				t.Fatalf("SplitJSON(%q) = %d messages; want %d", body, len(msgs), len(elems))
			}
			for i, e := range elems {
				var c bytes.Buffer
				if err := json.Compact(&c, e); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(c.Bytes(), msgs[i]) {
					t.Fatalf("SplitJSON(%q): message %d = %q; want %q", body, i, msgs[i], c.Bytes())
				}
			}
		} else if len(msgs) != 1 {
			t.Fatalf("SplitJSON(%q) = %d messages for a non-array", body, len(msgs))
		}
	})
}

func TestJoinJSONRecords(t *testing.T) {
	tests := []struct {
		name string
		msgs []string
		max  int
		want []string
	}{
		{"one", []string{`1`}, 10, []string{`1`}},
		{"all fit", []string{`1`, `"a,b"`, `[2,3]`}, 100, []string{`1,"a,b",[2,3]`}},
		{"exact bound", []string{`12`, `34`}, 5, []string{`12,34`}},
		{"split at the bound", []string{`12`, `34`, `5`}, 5, []string{`12,34`, `5`}},
		{"larger message alone", []string{`1`, `"long message"`, `2`}, 5, []string{`1`, `"long message"`, `2`}},
		{"none", nil, 5, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var msgs [][]byte
			for _, m := range tt.msgs {
				msgs = append(msgs, []byte(m))
			}
			recs := JoinJSONRecords(msgs, tt.max)
			var got, back []string
			for _, r := range recs {
				got = append(got, string(r))
				for _, m := range SplitJSONRecord(r) {
					back = append(back, string(m))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
				t.Errorf("JoinJSONRecords = %q, want %q", got, tt.want)
			}
			if fmt.Sprint(back) != fmt.Sprint(tt.msgs) {
				t.Errorf("split back = %q, want %q", back, tt.msgs)
			}
		})
	}
}
