package trace

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteJSON prints r as indented JSON.
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText prints r for a person: the shared path, each candidate with its
// probability and own steps, affinity, masquerade and the verdict.
func WriteText(w io.Writer, r *Result) error {
	b := &strings.Builder{}
	path := "locally generated (output path)"
	if r.Packet.Path == "prerouting" {
		path = "arriving on " + r.Packet.InInterface + " (prerouting path)"
	}
	fmt.Fprintf(b, "%s %s -> %s, %s\n", r.Packet.Protocol, r.Packet.From, r.Packet.To, path)
	fmt.Fprintf(b, "mode %s", r.Mode)
	if r.Source != "" {
		fmt.Fprintf(b, ", rules from %s", r.Source)
	}
	b.WriteString("\n\n")
	if len(r.Steps) > 0 {
		b.WriteString("Path:\n")
		writeSteps(b, r.Steps, "  ")
	}
	if len(r.Candidates) > 1 || (len(r.Candidates) == 1 && len(r.Candidates[0].Steps) > 0) {
		fmt.Fprintf(b, "Candidates (%d):\n", len(r.Candidates))
		for _, c := range r.Candidates {
			fmt.Fprintf(b, "  %8.4f%%  %s\n", c.Probability*100, candidateText(c))
			writeSteps(b, c.Steps, "      ")
		}
	}
	if len(r.StepsAfter) > 0 {
		b.WriteString("Then, on every candidate path:\n")
		writeSteps(b, r.StepsAfter, "  ")
	}
	writeAffinity(b, r.Affinity)
	masq := "no"
	switch {
	case r.Masquerade:
		masq = "yes"
	case r.MasqueradeSome:
		masq = "on some paths (see candidates)"
	}
	fmt.Fprintf(b, "Masquerade: %s\n", masq)
	fmt.Fprintf(b, "Verdict: %s\n", r.Verdict.Summary)
	if r.Live != nil {
		fmt.Fprintf(b, "Live (conntrack, %d connections):\n", r.Live.Total)
		for _, t := range r.Live.Endpoints {
			fmt.Fprintf(b, "  %6d  %s\n", t.Count, t.Endpoint)
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("Notes:\n")
		for _, n := range r.Notes {
			fmt.Fprintf(b, "  - %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func candidateText(c Candidate) string {
	s := strings.ToUpper(c.Verdict)
	switch {
	case c.Endpoint != "" && c.Verdict == "dnat":
		s += " to " + c.Endpoint
	case c.Endpoint != "":
		s += " after DNAT to " + c.Endpoint
	}
	if c.Weight != 0 {
		s += fmt.Sprintf(" (weight %d)", c.Weight)
	}
	if c.Masquerade {
		s += ", masqueraded"
	}
	return s
}

func writeSteps(b *strings.Builder, steps []Step, indent string) {
	for _, s := range steps {
		where := s.Table
		if s.Chain != "" {
			where += "/" + s.Chain
		}
		switch {
		case s.Line > 0:
			where += fmt.Sprintf(" line %d", s.Line)
		case s.Handle > 0:
			where += fmt.Sprintf(" handle %d", s.Handle)
		}
		fmt.Fprintf(b, "%s%s: %s\n", indent, where, s.Rule)
		act := s.Action
		if s.Chance > 0 && !strings.HasPrefix(act, "not chosen") && !strings.HasPrefix(act, "none chosen") {
			act += fmt.Sprintf(" (chosen with probability %.6g)", s.Chance)
		}
		fmt.Fprintf(b, "%s    -> %s\n", indent, act)
	}
}

func writeAffinity(b *strings.Builder, aff []Affinity) {
	if len(aff) == 0 {
		b.WriteString("Affinity: none\n")
		return
	}
	b.WriteString("Affinity: ClientIP\n")
	for _, a := range aff {
		fmt.Fprintf(b, "  %s", a.Store)
		if a.Endpoint != "" {
			fmt.Fprintf(b, " -> %s", a.Endpoint)
		}
		if a.Seconds > 0 {
			fmt.Fprintf(b, ", %ds", a.Seconds)
		}
		if a.Pinned {
			b.WriteString(", this client is pinned here")
		}
		b.WriteString("\n")
	}
}
