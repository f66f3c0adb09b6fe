package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// startDemoBackends serves, on each address, HTTP over TCP and an echo over UDP,
// both answering with the backend's own address, so the quickstart shows which
// endpoint a request reached without anything else installed.
func startDemoBackends(ctx context.Context, addrs []string, log *slog.Logger) error {
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("--demo-backends: %w", err)
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("--demo-backends: %w", err)
		}
		name := ln.Addr().String()
		srv := &http.Server{ReadHeaderTimeout: 10 * time.Second,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "hello from backend %s\n", name)
			})}
		go func() { _ = srv.Serve(ln) }()
		go echoUDP(pc, name)
		go func() {
			<-ctx.Done()
			_ = srv.Close()
			_ = pc.Close()
		}()
		log.Info("demo backend", "address", name)
	}
	return nil
}

func echoUDP(pc net.PacketConn, name string) {
	buf := make([]byte, 64*1024)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		reply := fmt.Appendf(nil, "backend %s: %s", name, buf[:n])
		_, _ = pc.WriteTo(reply, from)
	}
}
