package file

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Manifests within every budget pass the pre-scan and decode without a problem.
func TestPrescanAcceptsRealManifests(t *testing.T) {
	dump := mustRead(t, "testdata/kubectl-dump.yaml")
	anchored := `apiVersion: v1
kind: Service
metadata:
  name: anchored
  annotations:
    note: &note "ports: [80, 443] # not a comment"
    again: *note
spec:
  clusterIP: 10.96.0.20
  ports: &ports
  - name: http
    port: 80
  - name: https
    port: 443
`
	literal := `apiVersion: v1
kind: Service
metadata:
  name: literal
  annotations:
    script: |
      - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
      [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
      *a *b *c &d
    folded: >-
      {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{
    quoted: "a: [b, {c
      continues: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ }"
    single: 'it''s [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['
spec:
  clusterIP: 10.96.0.21   # [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
  ports: [{port: 80, name: "http", targetPort: 'a-b'}]
  externalName: "x: [y]"
`
	for name, doc := range map[string]string{
		"kubectl dump":          dump,
		"yaml":                  svcWeb + "---\n" + sliceWeb,
		"anchors":               anchored,
		"scalars like brackets": literal,
		"1000 endpoints":        svcWeb + "---\n" + bigSlice("full", MaxSliceEndpoints),
		"1000 endpoints json":   svcWeb + "---\n" + bigSliceJSON("full", MaxSliceEndpoints),
		"depth 64":              deepBlockMap(MaxDepth - 1),
	} {
		t.Run(name, func(t *testing.T) {
			err := splitDocuments([]byte(doc), func(n int, b []byte) {
				if object, err := prescan(b); err != nil {
					t.Fatalf("document %d: %s: %v", n, object, err)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(name, "depth") {
				return // within the depth budget, but not a valid Service
			}
			res := parseFile([]byte(doc), nil)
			if len(res.unidentified) > 0 || len(res.objects) == 0 {
				t.Fatalf("unidentified %v, %d objects", res.unidentified, len(res.objects))
			}
			for _, d := range res.objects {
				if d.err != nil {
					t.Errorf("%s: %v", d.object(), d.err)
				}
			}
		})
	}
}

// Each budget is enforced, with an error naming it (and the object, when known).
func TestPrescanRejectsOverBudget(t *testing.T) {
	list := "apiVersion: v1\nkind: List\nitems:\n- " +
		strings.ReplaceAll(strings.TrimSuffix(bigSlice("in-list", MaxSliceEndpoints+1), "\n"), "\n", "\n  ") + "\n"
	var anchors strings.Builder
	anchors.WriteString("apiVersion: v1\nkind: Service\nmetadata: {name: anchors}\nspec:\n")
	for i := 0; i <= MaxAnchors; i++ {
		anchors.WriteString("  a" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + ": &n" + strings.Repeat("1", i) + " v\n")
	}
	for _, c := range []struct {
		name, doc, object, err string
	}{
		{"deep block map", deepBlockMap(MaxDepth), "", "nesting deeper than 64 levels (line 69)"},
		{"deep flow", deepFlow(2 * MaxDepth), "", "nesting deeper than 64 levels (line 4)"},
		{"deep dashes", deepDashes(MaxDepth), "", "nesting deeper than 64 levels (line 5)"},
		{"alias bomb, flow", aliasBomb(9, true), "", "aliases expand to more than 10000 nodes"},
		{"alias bomb, block", aliasBomb(9, false), "", "aliases expand to more than 10000 nodes"},
		{"anchors", anchors.String(), "", "more than 1000 anchors"},
		{"endpoints", bigSlice("big", MaxSliceEndpoints+1), "EndpointSlice default/big", "endpoints: 1001 entries, more than the 1000 an EndpointSlice may hold"},
		{"endpoints json", bigSliceJSON("big", 5000), "EndpointSlice shop/big", "endpoints: 5000 entries"},
		{"endpoints in a List", list, "EndpointSlice default/in-list", "endpoints: 1001 entries"},
	} {
		t.Run(c.name, func(t *testing.T) {
			object, err := prescan([]byte(c.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			mustContain(t, err.Error(), c.err)
			if object != c.object {
				t.Fatalf("object %q, want %q", object, c.object)
			}
		})
	}
}

// A list called endpoints in an object of another kind is not capped.
func TestPrescanCapsOnlyEndpointSlices(t *testing.T) {
	doc := strings.Replace(bigSlice("x", MaxSliceEndpoints+1), "kind: EndpointSlice", "kind: Widget", 1)
	if object, err := prescan([]byte(doc)); err != nil {
		t.Fatalf("%s: %v", object, err)
	}
}

// splitDocuments cuts files where apimachinery's YAMLReader does.
func TestSplitDocumentsMatchesYAMLReader(t *testing.T) {
	for _, in := range []string{
		mustRead(t, "testdata/kubectl-dump.yaml"),
		"", "\n", "---\n", "---\n---\n", "a: 1\n---\nb: 2\n", "--- # c\na: 1\n--- \nb: 2",
		"a: 1\n---\n\n---\n# only a comment\n", "a: |\n  ----\n  x\n", `{"a":1}`, "a: 1\n---x\n",
	} {
		var got [][]byte
		err := splitDocuments([]byte(in), func(_ int, b []byte) { got = appendDoc(got, b) })
		var want [][]byte
		r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(in)))
		var werr error
		for {
			doc, e := r.Read()
			if errors.Is(e, io.EOF) {
				break
			}
			if e != nil {
				werr = e
				break
			}
			want = appendDoc(want, doc)
		}
		if (err != nil) != (werr != nil) {
			t.Errorf("%q: error %v, YAMLReader %v", in, err, werr)
			continue
		}
		if werr != nil {
			continue // YAMLReader drops the document before a bad separator
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\n got %q\nwant %q", in, got, want)
		}
	}
}

// appendDoc appends a document as YAML sees it: YAMLReader keeps a leading
// separator line and ends the last line with a newline, which change nothing.
func appendDoc(docs [][]byte, doc []byte) [][]byte {
	if bytes.HasPrefix(doc, []byte("---")) {
		_, doc, _ = bytes.Cut(doc, []byte("\n"))
	}
	if doc = bytes.TrimRight(doc, "\n"); len(doc) == 0 {
		return docs
	}
	return append(docs, doc)
}

func TestReadManifestSizeBudget(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/big.yaml"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileBytes + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := readManifest(path); !errors.Is(err, errTooBig) {
		t.Fatalf("over budget: %v", err)
	}
	if err := os.Truncate(path, MaxFileBytes); err != nil {
		t.Fatal(err)
	}
	if data, err := readManifest(path); err != nil || len(data) != MaxFileBytes {
		t.Fatalf("at budget: %d bytes, %v", len(data), err)
	}
}
