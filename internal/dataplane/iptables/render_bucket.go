package iptables

import (
	"strconv"

	"kproxy.dev/kproxy/internal/state"
)

// bucketAbove is the endpoint count above which a policy chain (KUBE-SVC or
// KUBE-SVL) chooses its endpoint in two steps through bucket chains instead of one
// flat list of -m statistic rules (see bucketChoice). At and below it the layout
// is kube-proxy's, rule for rule. A variable so that tests can lower it.
var bucketAbove = 1000

// bucketCount is the number of buckets for n endpoints: the smallest power of two
// whose square is at least n, so buckets hold between sqrt(n)/2 and sqrt(n)
// endpoints on average. It changes only when n crosses 4^k (1,024, 4,096,
// 16,384, 65,536, ...), the only changes that move every endpoint.
func bucketCount(n int) int {
	b := 1
	for b*b < n {
		b *= 2
	}
	return b
}

// bucketOf places an endpoint by a hash (FNV-1a) of its KUBE-SEP chain name, so
// its bucket does not depend on the other endpoints: adding or removing one
// endpoint changes one bucket. buckets is a power of two.
func bucketOf(sep string, buckets int) int {
	h := uint32(2166136261)
	for i := 0; i < len(sep); i++ {
		h ^= uint32(sep[i])
		h *= 16777619
	}
	return int(h & uint32(buckets-1))
}

// bucketChain names bucket i of a policy chain: the policy chain's prefix
// (KUBE-SVC- or KUBE-SVL-) and 16 characters of base32(sha256(policy chain name +
// "/bucket/" + i)), the same form as every kube-proxy chain name, so kube-proxy's
// and kproxy's cleanup of stale Service chains remove it too.
func (s *svcRender) bucketChain(chain string, i int) string {
	c := s.spec()
	c.a.reserve(&c.start, 64)
	var num [8]byte
	c.a.chunk = appendHashName(c.a.chunk, chain[:len(prefixSvc)], chain, "/bucket/", string(strconv.AppendInt(num[:0], int64(i), 10)))
	return c.str()
}

// bucketChoice is the endpoint choice of a policy chain with more than bucketAbove
// endpoints. Each endpoint is placed in one of bucketCount(n) buckets by
// bucketOf; the policy chain jumps to bucket b (of the non-empty ones, in order)
// with probability size(b)/(endpoints in buckets b and later), the last
// unconditionally, and the bucket chain picks one of its endpoints as a flat chain
// does. Every endpoint is chosen with probability size(b)/n * 1/size(b) = 1/n.
//
// A new connection walks O(sqrt n) rules instead of O(n), and a one-endpoint
// change rewrites one bucket chain of about sqrt(n) rules and the policy chain's
// bucket rules, instead of (in iptables-nft-restore) reading or writing all n.
func (s *svcRender) bucketChoice(chain string, eps []state.Endpoint) {
	nb := bucketCount(len(eps))
	// A counting sort of endpoint indices by bucket, keeping their order within
	// each bucket: order[first[b]:first[b+1]] are bucket b's endpoints.
	of := make([]int32, len(eps))
	first := make([]int, nb+1)
	texts, seps := make([]string, len(eps)), make([]string, len(eps))
	// targets[i] is what endpoint i's choice rule ends in: its KUBE-SEP chain,
	// or its address when it is folded (render_fold.go).
	targets := make([]string, len(eps))
	for i, ep := range eps {
		texts[i], seps[i] = s.sep(ep)
		targets[i] = seps[i]
		if s.folded(ep) {
			targets[i] = texts[i]
		}
		b := bucketOf(seps[i], nb)
		of[i] = int32(b)
		first[b+1]++
	}
	for b := 1; b <= nb; b++ {
		first[b] += first[b-1]
	}
	order := make([]int32, len(eps))
	next := append([]int(nil), first[:nb]...)
	for i, b := range of {
		order[next[b]] = int32(i)
		next[b]++
	}
	remaining := len(eps)
	for b := 0; b < nb; b++ {
		m := order[first[b]:first[b+1]]
		if len(m) == 0 {
			continue
		}
		name := s.bucketChain(chain, b)
		c := s.spec().comment(s.name, " bucket ", strconv.Itoa(b))
		if len(m) < remaining {
			c.add("-m", "statistic", "--mode", "random", "--probability", bucketProbability(len(m), remaining))
		}
		s.rule(chain, c.jump(name))
		remaining -= len(m)
		if s.reuseBucket(name, m, targets) {
			continue
		}
		s.chain(name, len(m))
		s.flatChoice(name, len(m), func(j int) (string, string) {
			i := m[j]
			if targets[i] != seps[i] {
				return texts[i], "" // folded
			}
			return texts[i], seps[i]
		})
	}
}

// bucketProbability is size/remaining with ten decimals, as every probability is
// written.
func bucketProbability(size, remaining int) string {
	return strconv.FormatFloat(float64(size)/float64(remaining), 'f', 10, 64)
}

// choiceRules is the number of rules endpointChoice puts in a policy chain for n
// endpoints: the affinity checks, then one rule per endpoint or per bucket.
func (s *svcRender) choiceRules(n int) int {
	rules := n
	if n > bucketAbove {
		rules = bucketCount(n)
	}
	if s.sp.AffinityTimeout > 0 {
		rules += n
	}
	return rules
}
