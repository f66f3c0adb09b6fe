package daemon

import (
	"log/slog"
	"os"
	"strconv"
)

// applyOOMScoreAdj sets the process's oom_score_adj (oomScoreAdj, -999 by default)
// so that the kernel kills other processes before the node's proxy, as kube-proxy
// does. Lowering it needs CAP_SYS_RESOURCE: without it the value stays as it is.
func applyOOMScoreAdj(v *int32, log *slog.Logger) {
	if v == nil {
		return
	}
	err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(int(*v))), 0)
	if err != nil {
		log.Debug("cannot set oom_score_adj", "value", *v, "err", err)
	}
}
