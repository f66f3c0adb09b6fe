package source

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// KindFile is the kind label of a rejection that concerns a whole file (one that
// does not parse at all) rather than one object.
const KindFile = "File"

// KindOther is the kind label of a rejection whose kind is none of Kinds: a
// misspelt or unknown kind, or one missing. Labels never come from input, so a flood
// of garbage kinds cannot create new series.
const KindOther = "Other"

// Kinds are every value the kind label of kproxy_rejected_objects_total takes.
var Kinds = []string{"Service", "EndpointSlice", "Node", "ServiceCIDR", "List", KindFile, KindOther}

// Rejects logs and counts objects kproxy cannot use, in
// kproxy_rejected_objects_total{kind}. A nil *Rejects does nothing, so tests and
// callers that do not care may pass nil.
type Rejects struct {
	log     *slog.Logger
	counter *prometheus.CounterVec
}

// NewRejects registers the counter on reg (skipped when reg is nil) and logs to log
// (slog.Default when nil).
func NewRejects(reg prometheus.Registerer, log *slog.Logger) *Rejects {
	if log == nil {
		log = slog.Default()
	}
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kproxy_rejected_objects_total",
		Help: "Objects (or whole manifest files) kproxy could not use, by kind; the last good version keeps serving.",
	}, []string{"kind"})
	// Every series exists from the start, so that a rate() over them works at once.
	for _, k := range Kinds {
		c.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(c)
	}
	return &Rejects{log: log, counter: c}
}

// Reject reports an object that cannot be used. object is "Kind ns/name" (or
// "Kind name"); err names the field. It fits state.Options.Reject.
func (r *Rejects) Reject(object string, err error) {
	r.RejectFile("", object, err)
}

// RejectFile reports an object found in file (file may be ""; object may be "" when
// the whole file is unusable). It logs one line: "file: object: field: problem",
// file and object clipped to MaxLoggedBytes, the error to MaxLoggedErrorBytes.
func (r *Rejects) RejectFile(file, object string, err error) {
	if r == nil {
		return
	}
	kind := kindOf(object)
	if object == "" && file != "" {
		kind = KindFile
	}
	file, object = Clip(file), Clip(object)
	parts := make([]string, 0, 3)
	for _, p := range []string{file, object, ClipTo(fmt.Sprint(err), MaxLoggedErrorBytes)} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	attrs := []any{"kind", kind}
	if file != "" {
		attrs = append(attrs, "file", file)
	}
	if object != "" {
		attrs = append(attrs, "object", object)
	}
	r.log.Warn("rejected: "+strings.Join(parts, ": "), attrs...)
	r.counter.WithLabelValues(kind).Inc()
}

// Count returns how many rejections of kind were counted (for tests and status);
// a kind outside Kinds reads the KindOther series.
func (r *Rejects) Count(kind string) float64 {
	if r == nil {
		return 0
	}
	var m dto.Metric
	if err := r.counter.WithLabelValues(fixedKind(kind)).Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// kindOf maps the kind named in "Kind ns/name" to one of Kinds.
func kindOf(object string) string {
	kind, _, _ := strings.Cut(object, " ")
	return fixedKind(kind)
}

func fixedKind(kind string) string {
	for _, k := range Kinds {
		if kind == k {
			return k
		}
	}
	return KindOther
}
