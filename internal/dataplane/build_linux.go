package dataplane

import "kproxy.dev/kproxy/internal/conntrack"

func init() { newDeleter = conntrack.NewDeleter }
