package file

import (
	"bytes"
	"fmt"

	"kproxy.dev/kproxy/internal/source"
)

// prescan reads one YAML (or JSON) document's text once, building nothing, and checks
// the budgets before the document is decoded: nesting depth (MaxDepth), anchors and
// what aliases expand to (MaxAnchors, MaxAliasNodes), and endpoints per
// EndpointSlice (MaxSliceEndpoints). Its memory does not grow with the document
// (a frame per nesting level, a counter per anchor).
//
// It follows only the YAML structure that matters here (block and flow collections,
// keys, quoted and block scalars, comments, anchors, aliases) and errs on the side of
// more nesting, never less. Whatever it lets through is still parsed by the YAML
// decoder, which has its own limits; object is "Kind ns/name" when the problem is
// in an identified object, else "".
func prescan(doc []byte) (object string, err error) {
	s := &scanner{data: doc, line: 1}
	for s.pos < len(s.data) && s.err == nil {
		s.blockLine()
	}
	if s.err == nil && s.pending {
		s.scalarNode(nil)
	}
	for len(s.frames) > 0 && s.err == nil {
		s.pop()
	}
	return s.object, s.err
}

// frame is one open collection.
type frame struct {
	col  int // column of a block collection's entries; -1 for a flow collection
	seq  bool
	key  []byte // the key whose value this collection is
	size int    // entries so far (sequences)
	// anchored collections are measured from start (s.nodes when opened) to close.
	anchor   uint64
	anchored bool
	start    int
	// identity of the object this collection is, when it is one
	kind, name, namespace []byte
	// endpoints is the length of an over-budget endpoints list of this object.
	endpoints int
}

type scanner struct {
	data             []byte
	pos, lineStart   int
	line             int
	frames           []frame
	nodes, aliasUsed int
	anchors          map[uint64]int
	// anchor is a pending &name, for the next node.
	anchor        uint64
	anchorPending bool
	// pending: a value is expected for pendingKey (nil after "- ") of the entry at
	// pendingCol (-1 in flow context), on this line or on later, deeper lines.
	pending    bool
	pendingCol int
	pendingKey []byte
	err        error
	object     string
}

func (s *scanner) fail(object, format string, args ...any) {
	if s.err == nil {
		s.object = object
		s.err = fmt.Errorf(format, args...)
	}
}

func (s *scanner) top() *frame {
	if len(s.frames) == 0 {
		return nil
	}
	return &s.frames[len(s.frames)-1]
}

// blockLine handles one line in block context (and any flow collection or quoted
// scalar that starts on it and runs over later lines).
func (s *scanner) blockLine() {
	s.lineStart = s.pos
	indent := 0
	for s.pos+indent < len(s.data) && s.data[s.pos+indent] == ' ' {
		indent++
	}
	p := s.pos + indent
	if p >= len(s.data) || isLineEnd(s.data[p]) || s.data[p] == '#' ||
		(indent == 0 && (s.data[p] == '%' || isMarker(s.data[p:]))) {
		s.skipLine()
		return
	}
	dash := isDash(s.data, p)
	if s.pending && !(indent > s.pendingCol || (indent == s.pendingCol && dash)) {
		s.scalarNode(nil) // "key:" with nothing below: a null value
	}
	if !s.pending {
		s.popBlock(indent, dash)
	}
	s.pos = p
	s.content()
}

// popBlock closes the block collections a line at col (starting with a dash or
// not) is outside of.
func (s *scanner) popBlock(col int, dash bool) {
	for s.err == nil {
		t := s.top()
		if t == nil || t.col < 0 || !(t.col > col || (t.col == col && t.seq && !dash)) {
			return
		}
		s.pop()
	}
}

// content reads the nodes of the rest of a block line.
func (s *scanner) content() {
	for s.err == nil {
		s.skipBlanks()
		if s.pos >= len(s.data) || isLineEnd(s.data[s.pos]) || s.data[s.pos] == '#' {
			s.skipLine()
			return
		}
		col := s.pos - s.lineStart
		switch c := s.data[s.pos]; {
		case isDash(s.data, s.pos):
			s.entry(col, true)
			s.pending, s.pendingCol, s.pendingKey = true, col, nil
			s.pos++
		case c == '&' || c == '!':
			s.property()
		case c == '*':
			s.alias()
		case c == '[' || c == '{':
			s.openFlow(c == '[')
		case c == '|' || c == '>':
			s.blockScalar()
			return
		case c == '?' && s.pos+1 < len(s.data) && (s.data[s.pos+1] == ' ' || isLineEnd(s.data[s.pos+1])):
			s.pos++ // complex key: its parts are read as they come
		default:
			s.scalarOrKey(col, false)
		}
	}
}

// entry starts an entry (a "- " item, or a key when seq is false) at col: of the
// collection open at col, or of a new one.
func (s *scanner) entry(col int, seq bool) {
	if s.pending && (col > s.pendingCol || (col == s.pendingCol && seq)) {
		key := s.pendingKey
		s.pending = false
		s.push(frame{col: col, seq: seq, key: key, size: 1})
		return
	}
	if t := s.top(); t != nil && t.col == col && t.seq == seq {
		t.size++
		if seq {
			s.checkEndpoints(t)
		}
		return
	}
	s.push(frame{col: col, seq: seq, size: 1})
}

// scalarOrKey reads a quoted or plain scalar; followed by ':' it is a key (after a
// quoted one, as in JSON, the ':' needs no space after it).
func (s *scanner) scalarOrKey(col int, flow bool) {
	var v []byte
	c := s.data[s.pos]
	quoted := c == '"' || c == '\''
	if quoted {
		v = s.quoted(c)
	} else {
		v = s.plain(flow)
	}
	after := s.pos
	for after < len(s.data) && (s.data[after] == ' ' || s.data[after] == '\t') {
		after++
	}
	if after < len(s.data) && s.data[after] == ':' && (quoted || after+1 == len(s.data) || isValueSep(s.data[after+1], flow)) {
		s.pos = after + 1
		if !flow {
			s.entry(col, false)
			s.pending, s.pendingCol, s.pendingKey = true, col, v
			return
		}
		s.pending, s.pendingCol, s.pendingKey = true, -1, v
		return
	}
	s.scalarNode(v)
}

// scalarNode counts a scalar (v is nil for a null) and, as the value of kind,
// metadata.name or metadata.namespace, remembers it to name the object.
func (s *scanner) scalarNode(v []byte) {
	key := s.nodeStart()
	s.nodes++
	s.takeAnchor(1)
	t := s.top()
	if t == nil || v == nil {
		return
	}
	switch string(key) {
	case "kind":
		t.kind = v
	case "name", "namespace":
		if string(t.key) != "metadata" || len(s.frames) < 2 {
			return
		}
		if obj := &s.frames[len(s.frames)-2]; string(key) == "name" {
			obj.name = v
		} else {
			obj.namespace = v
		}
	}
}

// nodeStart is called as a node begins: it takes the pending key (returned) and
// counts an item of a flow sequence.
func (s *scanner) nodeStart() []byte {
	if s.pending {
		s.pending = false
		return s.pendingKey
	}
	if t := s.top(); t != nil && t.col < 0 && t.seq {
		t.size++
		s.checkEndpoints(t)
	}
	return nil
}

func (s *scanner) push(f frame) {
	if len(s.frames) >= MaxDepth {
		s.fail("", "nesting deeper than %d levels (line %d)", MaxDepth, s.line)
		return
	}
	f.start = s.nodes
	if s.anchorPending {
		f.anchor, f.anchored, s.anchorPending = s.anchor, true, false
	}
	s.nodes++
	s.frames = append(s.frames, f)
	if f.col >= 0 && f.seq {
		s.checkEndpoints(s.top())
	}
}

// pop closes the innermost collection.
func (s *scanner) pop() {
	f := s.frames[len(s.frames)-1]
	s.frames = s.frames[:len(s.frames)-1]
	if f.anchored {
		s.define(f.anchor, s.nodes-f.start)
	}
	if f.endpoints > 0 && (len(f.kind) == 0 || string(f.kind) == kindEndpointSlice) {
		s.fail(objectName(f), "endpoints: %d entries, more than the %d an EndpointSlice may hold", f.endpoints, MaxSliceEndpoints)
	}
}

// checkEndpoints marks the object holding an endpoints list that is over budget; it
// is rejected when it closes and its name is known (kubectl sorts keys, so kind and
// metadata come after endpoints).
func (s *scanner) checkEndpoints(t *frame) {
	if t.size <= MaxSliceEndpoints || string(t.key) != "endpoints" || len(s.frames) < 2 {
		return
	}
	s.frames[len(s.frames)-2].endpoints = t.size
}

func objectName(f frame) string {
	kind := source.ClipBytes(f.kind)
	if kind == "" {
		kind = kindEndpointSlice
	}
	if len(f.name) == 0 {
		return ""
	}
	ns := source.ClipBytes(f.namespace)
	if ns == "" {
		ns = "default"
	}
	return objKey{Kind: kind, Namespace: ns, Name: source.ClipBytes(f.name)}.String()
}

// property reads an anchor (&name) or a tag (!tag) before a node.
func (s *scanner) property() {
	start := s.pos
	s.pos++
	for s.pos < len(s.data) && !isTokenEnd(s.data[s.pos]) {
		s.pos++
	}
	if s.data[start] == '&' {
		s.anchor, s.anchorPending = hashName(s.data[start+1:s.pos]), true
	}
}

// alias reads *name: the node it stands for, expanded, counts against MaxAliasNodes.
func (s *scanner) alias() {
	s.nodeStart()
	start := s.pos + 1
	s.pos++
	for s.pos < len(s.data) && !isTokenEnd(s.data[s.pos]) {
		s.pos++
	}
	n, ok := s.anchors[hashName(s.data[start:s.pos])]
	if !ok {
		n = 1
	}
	s.nodes += n
	s.aliasUsed += n
	if s.aliasUsed > MaxAliasNodes {
		s.fail("", "aliases expand to more than %d nodes (line %d)", MaxAliasNodes, s.line)
	}
}

func (s *scanner) takeAnchor(size int) {
	if s.anchorPending {
		s.anchorPending = false
		s.define(s.anchor, size)
	}
}

func (s *scanner) define(name uint64, size int) {
	if s.anchors == nil {
		s.anchors = map[uint64]int{}
	}
	s.anchors[name] = size
	if len(s.anchors) > MaxAnchors {
		s.fail("", "more than %d anchors (line %d)", MaxAnchors, s.line)
	}
}

// hashName keys anchors without keeping their names (FNV-1a).
func hashName(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

// blockScalar skips a literal (|) or folded (>) scalar: the rest of the line and
// every following line indented deeper than the entry it belongs to.
func (s *scanner) blockScalar() {
	parent := -1
	if s.pending {
		parent = s.pendingCol
	} else if t := s.top(); t != nil {
		parent = t.col
	}
	s.scalarNode(nil)
	s.skipLine()
	for s.pos < len(s.data) {
		i := s.pos
		for i < len(s.data) && s.data[i] == ' ' {
			i++
		}
		if i < len(s.data) && !isLineEnd(s.data[i]) && i-s.pos <= parent {
			return
		}
		s.skipLine()
	}
}

// openFlow reads a flow collection ([...] or {...}, JSON included) to its end.
func (s *scanner) openFlow(seq bool) {
	key := s.nodeStart()
	s.pos++
	s.push(frame{col: -1, seq: seq, key: key})
	base := len(s.frames) - 1
	for s.err == nil && len(s.frames) > base && s.pos < len(s.data) {
		s.flowToken()
	}
}

func (s *scanner) flowToken() {
	c := s.data[s.pos]
	switch {
	case c == '\n':
		s.newline(s.pos)
		s.pos++
	case c == ' ' || c == '\t' || c == '\r':
		s.pos++
	case c == '#':
		s.skipComment()
	case c == '[' || c == '{':
		key := s.nodeStart()
		s.pos++
		s.push(frame{col: -1, seq: c == '[', key: key})
	case c == ']' || c == '}' || c == ',':
		if s.pending {
			s.scalarNode(nil)
		}
		s.pos++
		if c != ',' {
			s.pop()
		}
	case c == '&' || c == '!':
		s.property()
	case c == '*':
		s.alias()
	case c == ':':
		s.pos++
		s.pending, s.pendingCol, s.pendingKey = true, -1, nil
	default:
		s.scalarOrKey(-1, true)
	}
}

// quoted reads a quoted scalar (which may run over lines) and returns its content
// (with any escapes left as they are).
func (s *scanner) quoted(q byte) []byte {
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '\n':
			s.newline(i)
		case c == '\\' && q == '"':
			if i+1 < len(s.data) && s.data[i+1] == '\n' {
				s.newline(i + 1)
			}
			i++
		case c == q:
			if q == '\'' && i+1 < len(s.data) && s.data[i+1] == '\'' {
				i++
				continue
			}
			s.pos = i + 1
			return s.data[start:i]
		}
	}
	s.pos = len(s.data)
	return s.data[start:]
}

// plain reads a plain scalar up to the end of the line, a comment, a ": " or, in
// flow context, a flow indicator.
func (s *scanner) plain(flow bool) []byte {
	start := s.pos
	for ; s.pos < len(s.data); s.pos++ {
		c := s.data[s.pos]
		if isLineEnd(c) || (flow && isFlowIndicator(c)) {
			break
		}
		if c == ':' && (s.pos+1 == len(s.data) || isValueSep(s.data[s.pos+1], flow)) {
			break
		}
		if c == '#' && s.pos > start && (s.data[s.pos-1] == ' ' || s.data[s.pos-1] == '\t') {
			break
		}
	}
	return bytes.TrimRight(s.data[start:s.pos], " \t")
}

func (s *scanner) skipBlanks() {
	for s.pos < len(s.data) && (s.data[s.pos] == ' ' || s.data[s.pos] == '\t') {
		s.pos++
	}
}

func (s *scanner) skipComment() {
	for s.pos < len(s.data) && s.data[s.pos] != '\n' {
		s.pos++
	}
}

// skipLine moves past the end of the current line.
func (s *scanner) skipLine() {
	s.skipComment()
	if s.pos < len(s.data) {
		s.newline(s.pos)
		s.pos++
	}
}

func (s *scanner) newline(at int) {
	s.line++
	s.lineStart = at + 1
}

func isLineEnd(c byte) bool { return c == '\n' || c == '\r' }

func isFlowIndicator(c byte) bool {
	return c == ',' || c == '[' || c == ']' || c == '{' || c == '}'
}

// isValueSep reports whether c, after a ':', makes the ':' a key separator.
func isValueSep(c byte, flow bool) bool {
	return c == ' ' || c == '\t' || isLineEnd(c) || (flow && isFlowIndicator(c))
}

func isTokenEnd(c byte) bool {
	return c == ' ' || c == '\t' || isLineEnd(c) || isFlowIndicator(c)
}

func isDash(b []byte, p int) bool {
	return b[p] == '-' && (p+1 == len(b) || b[p+1] == ' ' || b[p+1] == '\t' || isLineEnd(b[p+1]))
}

func isMarker(b []byte) bool {
	if len(b) < 3 || !(bytes.HasPrefix(b, []byte("---")) || bytes.HasPrefix(b, []byte("..."))) {
		return false
	}
	return len(b) == 3 || b[3] == ' ' || b[3] == '\t' || isLineEnd(b[3])
}
