// Package jcs writes JSON in the JSON Canonicalization Scheme (RFC 8785).
//
// The Inngest SDKs check a request's signature over the canonical form of
// the body they parsed, not over the bytes they received, so a server that
// signs must sign (and should send) exactly what JavaScript's
// JSON.stringify would give for that parsed value with sorted keys: numbers
// as IEEE doubles printed the ECMAScript way, keys ordered by UTF-16 code
// units, strings with only the mandatory escapes.
//
// Every call to an app is canonicalized in production mode, so this is a
// single pass over the bytes that copies what is already canonical (plain
// strings, small integers, members in order) and allocates only for what is
// not.
package jcs

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

// Transform returns the canonical form of a JSON document.
func Transform(in []byte) ([]byte, error) {
	c := canon{in: in, out: make([]byte, 0, len(in))}
	c.space()
	if err := c.value(0); err != nil {
		return nil, err
	}
	c.space()
	if c.pos != len(in) {
		return nil, c.errorf("data after the top-level value")
	}
	return c.out, nil
}

// canon is one transformation: input read from pos, output appended.
type canon struct {
	in      []byte
	pos     int
	out     []byte
	members []member // a stack shared by nested objects
}

// member is one object member already written to out[start:end]; key is
// its decoded name, for sorting.
type member struct {
	key        []byte
	start, end int
}

func (c *canon) errorf(format string, args ...any) error {
	return fmt.Errorf("jcs: offset %d: %s", c.pos, fmt.Sprintf(format, args...))
}

func (c *canon) space() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *canon) value(depth int) error {
	if c.pos >= len(c.in) {
		return c.errorf("unexpected end of input")
	}
	if depth > maxDepth {
		return c.errorf("nested too deeply")
	}
	switch b := c.in[c.pos]; {
	case b == '{':
		return c.object(depth)
	case b == '[':
		return c.array(depth)
	case b == '"':
		_, err := c.str()
		return err
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	case b == '-' || (b >= '0' && b <= '9'):
		return c.number()
	default:
		return c.errorf("unexpected %q", b)
	}
}

func (c *canon) literal(word string) error {
	if !strings.HasPrefix(string(c.in[c.pos:min(len(c.in), c.pos+len(word))]), word) {
		return c.errorf("invalid literal")
	}
	c.out = append(c.out, word...)
	c.pos += len(word)
	return nil
}

func (c *canon) array(depth int) error {
	c.pos++ // '['
	c.out = append(c.out, '[')
	c.space()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		c.out = append(c.out, ']')
		return nil
	}
	for {
		c.space()
		if err := c.value(depth + 1); err != nil {
			return err
		}
		c.space()
		if c.pos >= len(c.in) {
			return c.errorf("unterminated array")
		}
		switch c.in[c.pos] {
		case ',':
			c.pos++
			c.out = append(c.out, ',')
		case ']':
			c.pos++
			c.out = append(c.out, ']')
			return nil
		default:
			return c.errorf("expected ',' or ']'")
		}
	}
}

// object writes members in the order read and reorders them afterwards
// only if they were not already sorted (or repeat a key: the last wins, as
// with JSON.parse).
func (c *canon) object(depth int) error {
	c.pos++ // '{'
	objStart := len(c.out)
	c.out = append(c.out, '{')
	c.space()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		c.out = append(c.out, '}')
		return nil
	}
	base := len(c.members)
	defer func() { c.members = c.members[:base] }()
	for {
		c.space()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return c.errorf("expected a member name")
		}
		start := len(c.out)
		key, err := c.str()
		if err != nil {
			return err
		}
		c.space()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return c.errorf("expected ':'")
		}
		c.pos++
		c.out = append(c.out, ':')
		c.space()
		if err := c.value(depth + 1); err != nil {
			return err
		}
		c.members = append(c.members, member{key: key, start: start, end: len(c.out)})
		c.space()
		if c.pos >= len(c.in) {
			return c.errorf("unterminated object")
		}
		if c.in[c.pos] == '}' {
			c.pos++
			break
		}
		if c.in[c.pos] != ',' {
			return c.errorf("expected ',' or '}'")
		}
		c.pos++
		c.out = append(c.out, ',')
	}
	ms := c.members[base:]
	sorted := true
	for i := 1; i < len(ms) && sorted; i++ {
		sorted = lessUTF16(ms[i-1].key, ms[i].key)
	}
	if sorted {
		c.out = append(c.out, '}')
		return nil
	}
	// Reorder: stable, so that of repeated keys the last one read is last.
	written := append([]byte(nil), c.out[objStart:]...)
	slices.SortStableFunc(ms, func(a, b member) int {
		switch {
		case lessUTF16(a.key, b.key):
			return -1
		case lessUTF16(b.key, a.key):
			return 1
		}
		return 0
	})
	c.out = append(c.out[:objStart], '{')
	first := true
	for i, m := range ms {
		if i+1 < len(ms) && string(ms[i+1].key) == string(m.key) {
			continue // a later value for the same key wins
		}
		if !first {
			c.out = append(c.out, ',')
		}
		first = false
		c.out = append(c.out, written[m.start-objStart:m.end-objStart]...)
	}
	c.out = append(c.out, '}')
	return nil
}

// str writes the canonical form of the string at pos and returns its
// decoded value (a slice of the input when it needs no decoding).
func (c *canon) str() ([]byte, error) {
	c.pos++ // opening quote
	start := c.pos
	plain := true // no escapes and valid UTF-8: copy as is
	ascii := true
	for ; c.pos < len(c.in); c.pos++ {
		b := c.in[c.pos]
		if b == '"' {
			break
		}
		if b < 0x20 {
			return nil, c.errorf("control character in string")
		}
		if b == '\\' {
			plain = false
			c.pos++ // skip the escaped byte; validated below
		} else if b >= utf8.RuneSelf {
			ascii = false
		}
	}
	if c.pos >= len(c.in) {
		return nil, c.errorf("unterminated string")
	}
	raw := c.in[start:c.pos]
	c.pos++ // closing quote
	if plain && (ascii || utf8.Valid(raw)) {
		c.out = append(c.out, '"')
		c.out = append(c.out, raw...)
		c.out = append(c.out, '"')
		return raw, nil
	}
	decoded, err := decodeString(raw)
	if err != nil {
		c.pos = start
		return nil, c.errorf("%v", err)
	}
	c.out = appendQuoted(c.out, decoded)
	return decoded, nil
}

// decodeString resolves escapes. Invalid UTF-8 becomes U+FFFD, as when
// Node decodes a body; a lone surrogate escape is kept as a surrogate (in
// WTF-8), as JSON.parse keeps it.
func decodeString(raw []byte) ([]byte, error) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		b := raw[i]
		if b >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(raw[i:])
			out = utf8.AppendRune(out, r) // RuneError for invalid bytes
			i += size
			continue
		}
		if b != '\\' {
			out = append(out, b)
			i++
			continue
		}
		if i+1 >= len(raw) {
			return nil, errors.New("bad escape")
		}
		switch e := raw[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			u, ok := hex4(raw[i+2:])
			if !ok {
				return nil, errors.New(`bad \u escape`)
			}
			i += 6
			if utf16.IsSurrogate(rune(u)) && u < 0xdc00 && i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
				if lo, ok := hex4(raw[i+2:]); ok && lo >= 0xdc00 && lo <= 0xdfff {
					out = utf8.AppendRune(out, utf16.DecodeRune(rune(u), rune(lo)))
					i += 6
					continue
				}
			}
			if utf16.IsSurrogate(rune(u)) {
				out = append(out, 0xe0|byte(u>>12), 0x80|byte(u>>6)&0x3f, 0x80|byte(u)&0x3f)
			} else {
				out = utf8.AppendRune(out, rune(u))
			}
			continue
		default:
			return nil, fmt.Errorf("bad escape \\%c", e)
		}
		i += 2
	}
	return out, nil
}

func hex4(b []byte) (uint16, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var v uint16
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint16(c)
	}
	return v, true
}

const hexDigits = "0123456789abcdef"

// appendQuoted quotes s as JSON.stringify does: only '"', '\\' and control
// characters are escaped, and lone surrogates (WTF-8 here) as \udxxx.
func appendQuoted(out, s []byte) []byte {
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			out = append(out, '\\', '"')
		case c == '\\':
			out = append(out, '\\', '\\')
		case c == 0xed && i+2 < len(s) && s[i+1] >= 0xa0:
			u := uint16(c&0x0f)<<12 | uint16(s[i+1]&0x3f)<<6 | uint16(s[i+2]&0x3f)
			out = append(out, '\\', 'u', hexDigits[u>>12], hexDigits[u>>8&0xf], hexDigits[u>>4&0xf], hexDigits[u&0xf])
			i += 2
		case c >= 0x20:
			out = append(out, c)
		case c == '\b':
			out = append(out, '\\', 'b')
		case c == '\f':
			out = append(out, '\\', 'f')
		case c == '\n':
			out = append(out, '\\', 'n')
		case c == '\r':
			out = append(out, '\\', 'r')
		case c == '\t':
			out = append(out, '\\', 't')
		default:
			out = append(out, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	return append(out, '"')
}

// number validates a JSON number and writes it the ECMAScript way. Plain
// integers short enough to be exact doubles are already canonical.
func (c *canon) number() error {
	start := c.pos
	if c.in[c.pos] == '-' {
		c.pos++
	}
	intStart := c.pos
	switch {
	case c.pos < len(c.in) && c.in[c.pos] == '0':
		c.pos++
	case c.pos < len(c.in) && c.in[c.pos] >= '1' && c.in[c.pos] <= '9':
		for c.pos < len(c.in) && c.in[c.pos] >= '0' && c.in[c.pos] <= '9' {
			c.pos++
		}
	default:
		return c.errorf("invalid number")
	}
	intDigits := c.pos - intStart
	simple := true
	if c.pos < len(c.in) && c.in[c.pos] == '.' {
		simple = false
		c.pos++
		if !c.digits() {
			return c.errorf("invalid number")
		}
	}
	if c.pos < len(c.in) && (c.in[c.pos] == 'e' || c.in[c.pos] == 'E') {
		simple = false
		c.pos++
		if c.pos < len(c.in) && (c.in[c.pos] == '+' || c.in[c.pos] == '-') {
			c.pos++
		}
		if !c.digits() {
			return c.errorf("invalid number")
		}
	}
	lit := c.in[start:c.pos]
	if simple && intDigits <= 15 && string(lit) != "-0" {
		c.out = append(c.out, lit...)
		return nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return c.errorf("number %s: %v", lit, err)
	}
	if math.IsInf(f, 0) {
		return c.errorf("number %s is out of range", lit)
	}
	c.out = append(c.out, FormatNumber(f)...)
	return nil
}

func (c *canon) digits() bool {
	start := c.pos
	for c.pos < len(c.in) && c.in[c.pos] >= '0' && c.in[c.pos] <= '9' {
		c.pos++
	}
	return c.pos > start
}

// lessUTF16 orders decoded names by their UTF-16 code units (RFC 8785
// §3.2.3), which differs from byte order above U+FFFF.
func lessUTF16(a, b []byte) bool {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == len(a) || i == len(b) {
		return len(a) < len(b)
	}
	if a[i] < utf8.RuneSelf && b[i] < utf8.RuneSelf {
		return a[i] < b[i]
	}
	// Back up to the start of the differing characters and compare units.
	for i > 0 && !utf8.RuneStart(a[i]) {
		i--
	}
	ua, ub := units(a[i:]), units(b[i:])
	for k := 0; k < len(ua) && k < len(ub); k++ {
		if ua[k] != ub[k] {
			return ua[k] < ub[k]
		}
	}
	return len(ua) < len(ub)
}

// units decodes (WTF-8) text into UTF-16 code units.
func units(s []byte) []uint16 {
	var out []uint16
	for i := 0; i < len(s); {
		if s[i] == 0xed && i+2 < len(s) && s[i+1] >= 0xa0 { // a lone surrogate
			out = append(out, uint16(s[i]&0x0f)<<12|uint16(s[i+1]&0x3f)<<6|uint16(s[i+2]&0x3f))
			i += 3
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			out = append(out, uint16(r1), uint16(r2))
		} else {
			out = append(out, uint16(r))
		}
		i += size
	}
	return out
}

// FormatNumber prints a double as ECMAScript's Number.prototype.toString
// does (RFC 8785 §3.2.2.3): the shortest digits that read back the same,
// plain notation for exponents in [-7, 21), exponent notation otherwise.
func FormatNumber(f float64) string {
	if f == 0 {
		return "0" // also -0
	}
	neg := f < 0
	if neg {
		f = -f
	}
	// Shortest round-trip digits and the decimal exponent: d.ddd e±x.
	e := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expStr, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	exp, _ := strconv.Atoi(expStr)
	n := exp + 1 // position of the decimal point relative to the digits
	k := len(digits)
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	switch {
	case k <= n && n <= 21:
		b.WriteString(digits)
		b.WriteString(strings.Repeat("0", n-k))
	case 0 < n && n <= 21:
		b.WriteString(digits[:n])
		b.WriteByte('.')
		b.WriteString(digits[n:])
	case -6 < n && n <= 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -n))
		b.WriteString(digits)
	default:
		b.WriteByte(digits[0])
		if k > 1 {
			b.WriteByte('.')
			b.WriteString(digits[1:])
		}
		b.WriteByte('e')
		if n-1 >= 0 {
			b.WriteByte('+')
		}
		b.WriteString(strconv.Itoa(n - 1))
	}
	return b.String()
}
