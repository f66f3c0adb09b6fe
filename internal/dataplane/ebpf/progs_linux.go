//go:build linux

package ebpf

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Offsets in struct bpf_sock_addr (UAPI, stable).
const (
	ctxUserIP4  = 4
	ctxUserIP6  = 8
	ctxUserPort = 24
	ctxProtocol = 36
)

// Stack layout of the programs (offsets from the frame pointer).
const (
	stSvcKey  = -24  // svcKey, 20 bytes
	stBeKey   = -32  // backendKey, 8 bytes
	stRevKey  = -64  // revnatKey, 32 bytes
	stRevVal  = -88  // backendValue, 20 bytes (the Service address and port)
	stAffKey  = -104 // affinityKey, 16 bytes
	stAffVal  = -136 // affinityValue, 32 bytes
	errnoConn = 111  // ECONNREFUSED
)

// progMaps are the maps the programs reference by file descriptor.
type progMaps struct {
	services, backends, revnat, affinity *ebpf.Map
}

// loadAddr copies the socket address of the context (IPv4 as IPv4-mapped IPv6)
// into 16 bytes at off on the stack.
func loadAddr(v6 bool, off int16) asm.Instructions {
	if v6 {
		var out asm.Instructions
		for i := int16(0); i < 4; i++ {
			out = append(out,
				asm.LoadMem(asm.R2, asm.R6, ctxUserIP6+4*i, asm.Word),
				asm.StoreMem(asm.RFP, off+4*i, asm.R2, asm.Word))
		}
		return out
	}
	return asm.Instructions{
		asm.StoreImm(asm.RFP, off, 0, asm.Word),
		asm.StoreImm(asm.RFP, off+4, 0, asm.Word),
		asm.StoreImm(asm.RFP, off+8, int64(int32(-65536)), asm.Word), // 00 00 ff ff
		asm.LoadMem(asm.R2, asm.R6, ctxUserIP4, asm.Word),
		asm.StoreMem(asm.RFP, off+12, asm.R2, asm.Word),
	}
}

// storeAddr writes the 16-byte address and the port at src+off into the context.
func storeAddr(v6 bool, src asm.Register) asm.Instructions {
	var out asm.Instructions
	if v6 {
		for i := int16(0); i < 4; i++ {
			out = append(out,
				asm.LoadMem(asm.R2, src, 4*i, asm.Word),
				asm.StoreMem(asm.R6, ctxUserIP6+4*i, asm.R2, asm.Word))
		}
	} else {
		out = append(out,
			asm.LoadMem(asm.R2, src, 12, asm.Word),
			asm.StoreMem(asm.R6, ctxUserIP4, asm.R2, asm.Word))
	}
	return append(out,
		asm.LoadMem(asm.R2, src, 16, asm.Half),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R2, asm.Word))
}

// copy16 copies 16 bytes from src+soff to the stack at doff.
func copy16(src asm.Register, soff, doff int16) asm.Instructions {
	var out asm.Instructions
	for i := int16(0); i < 4; i++ {
		out = append(out,
			asm.LoadMem(asm.R2, src, soff+4*i, asm.Word),
			asm.StoreMem(asm.RFP, doff+4*i, asm.R2, asm.Word))
	}
	return out
}

func stackPtr(r asm.Register, off int16) asm.Instructions {
	return asm.Instructions{asm.Mov.Reg(r, asm.RFP), asm.Add.Imm(r, int32(off))}
}

// forwardInsns is connect4/6 and sendmsg4/6: look the destination up in services;
// no entry: leave the socket alone; no backend: refuse with ECONNREFUSED; else
// pick a slot (ClientIP affinity, Maglev over the netns cookie, or random),
// rewrite the destination and remember the translation in revnat.
//
// Registers: R6 context, R7 the svcValue, R8 the chosen backend (a backendValue or
// an affinityValue, which starts with the same layout), R9 scratch.
func forwardInsns(v6 bool, m progMaps) asm.Instructions {
	in := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
	in = append(in, loadAddr(v6, stSvcKey)...)
	in = append(in,
		asm.LoadMem(asm.R2, asm.R6, ctxUserPort, asm.Word),
		asm.StoreMem(asm.RFP, stSvcKey+16, asm.R2, asm.Half),
		asm.LoadMem(asm.R2, asm.R6, ctxProtocol, asm.Word),
		asm.StoreMem(asm.RFP, stSvcKey+18, asm.R2, asm.Byte),
		asm.StoreImm(asm.RFP, stSvcKey+19, 0, asm.Byte),
		asm.LoadMapPtr(asm.R1, m.services.FD()))
	in = append(in, stackPtr(asm.R2, stSvcKey)...)
	in = append(in,
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.LoadMem(asm.R2, asm.R7, 4, asm.Word),
		asm.JEq.Imm(asm.R2, 0, "refuse"),
		asm.LoadMem(asm.R2, asm.R7, 12, asm.Word),
		asm.JEq.Imm(asm.R2, 0, "pick"))
	in = append(in, affinityLookup(m)...)
	in = append(in, pickSlot(m)...)
	in = append(in, affinitySave(m)...)
	rw := storeAddr(v6, asm.R8)
	rw[0] = rw[0].WithSymbol("rewrite")
	in = append(in, rw...)
	in = append(in, revnatSave(m)...)
	return append(in,
		asm.Mov.Imm(asm.R0, 1).WithSymbol("pass"),
		asm.Return(),
		asm.Mov.Imm(asm.R1, -errnoConn).WithSymbol("refuse"),
		asm.FnSetRetval.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return())
}

// affinityLookup builds the affinity key and jumps to rewrite with R8 on the
// remembered backend when it was used within the timeout (refreshing its time).
func affinityLookup(m progMaps) asm.Instructions {
	in := asm.Instructions{
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetNetnsCookie.Call(),
		asm.StoreMem(asm.RFP, stAffKey, asm.R0, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, 0, asm.Word),
		asm.StoreMem(asm.RFP, stAffKey+8, asm.R2, asm.Word),
		asm.StoreImm(asm.RFP, stAffKey+12, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, m.affinity.FD()),
	}
	in = append(in, stackPtr(asm.R2, stAffKey)...)
	return append(in,
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pick"),
		asm.Mov.Reg(asm.R8, asm.R0),
		asm.FnKtimeGetNs.Call(),
		asm.LoadMem(asm.R3, asm.R8, 24, asm.DWord),
		asm.Mov.Reg(asm.R4, asm.R0),
		asm.Sub.Reg(asm.R4, asm.R3),
		asm.LoadMem(asm.R5, asm.R7, 12, asm.Word),
		asm.Mul.Imm(asm.R5, 1000000000),
		asm.JGT.Reg(asm.R4, asm.R5, "pick"),
		asm.StoreMem(asm.R8, 24, asm.R0, asm.DWord),
		asm.Ja.Label("rewrite"))
}

// pickSlot chooses a slot in [0, count) and looks the backend up into R8.
func pickSlot(m progMaps) asm.Instructions {
	in := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R7, 8, asm.Byte).WithSymbol("pick"),
		asm.JEq.Imm(asm.R2, int32(schedMaglev), "hash"),
		asm.FnGetPrandomU32.Call(),
		asm.Ja.Label("mod"),
		asm.Mov.Reg(asm.R1, asm.R6).WithSymbol("hash"),
		asm.FnGetNetnsCookie.Call(),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.LoadMem(asm.R2, asm.R7, 9, asm.Byte),
		asm.And.Imm(asm.R2, int32(flagHashSocket)),
		asm.JEq.Imm(asm.R2, 0, "mix"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.Xor.Reg(asm.R9, asm.R0),
		asm.LoadMem(asm.R2, asm.R7, 0, asm.Word).WithSymbol("mix"),
		asm.Add.Reg(asm.R9, asm.R2),
		asm.LoadImm(asm.R1, -7046029254386353131, asm.DWord), // 0x9e3779b97f4a7c15
		asm.Mul.Reg(asm.R9, asm.R1),
		asm.Mov.Reg(asm.R0, asm.R9),
		asm.RSh.Imm(asm.R9, 32),
		asm.Xor.Reg(asm.R0, asm.R9),
		asm.LoadMem(asm.R2, asm.R7, 4, asm.Word).WithSymbol("mod"),
		asm.Mod.Reg(asm.R0, asm.R2),
		asm.LoadMem(asm.R2, asm.R7, 0, asm.Word),
		asm.StoreMem(asm.RFP, stBeKey, asm.R2, asm.Word),
		asm.StoreMem(asm.RFP, stBeKey+4, asm.R0, asm.Word),
		asm.LoadMapPtr(asm.R1, m.backends.FD()),
	}
	in = append(in, stackPtr(asm.R2, stBeKey)...)
	return append(in,
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),
		asm.Mov.Reg(asm.R8, asm.R0))
}

// affinitySave remembers the backend for the client when the Service has affinity.
func affinitySave(m progMaps) asm.Instructions {
	in := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R7, 12, asm.Word),
		asm.JEq.Imm(asm.R2, 0, "rewrite"),
	}
	in = append(in, copy16(asm.R8, 0, stAffVal)...)
	in = append(in,
		asm.LoadMem(asm.R2, asm.R8, 16, asm.Word),
		asm.StoreMem(asm.RFP, stAffVal+16, asm.R2, asm.Word),
		asm.StoreImm(asm.RFP, stAffVal+20, 0, asm.Word),
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.RFP, stAffVal+24, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, m.affinity.FD()))
	in = append(in, stackPtr(asm.R2, stAffKey)...)
	in = append(in, stackPtr(asm.R3, stAffVal)...)
	return append(in, asm.Mov.Imm(asm.R4, 0), asm.FnMapUpdateElem.Call())
}

// revnatSave records (socket cookie, backend) -> Service address for recvmsg and
// getpeername.
func revnatSave(m progMaps) asm.Instructions {
	in := asm.Instructions{
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stRevKey, asm.R0, asm.DWord),
	}
	in = append(in, copy16(asm.R8, 0, stRevKey+8)...)
	in = append(in,
		asm.LoadMem(asm.R2, asm.R8, 16, asm.Half),
		asm.StoreMem(asm.RFP, stRevKey+24, asm.R2, asm.Half),
		asm.StoreImm(asm.RFP, stRevKey+26, 0, asm.Half),
		asm.StoreImm(asm.RFP, stRevKey+28, 0, asm.Word))
	in = append(in, copy16(asm.RFP, stSvcKey, stRevVal)...)
	in = append(in,
		asm.LoadMem(asm.R2, asm.RFP, stSvcKey+16, asm.Half),
		asm.StoreMem(asm.RFP, stRevVal+16, asm.R2, asm.Half),
		asm.StoreImm(asm.RFP, stRevVal+18, 0, asm.Half),
		asm.LoadMapPtr(asm.R1, m.revnat.FD()))
	in = append(in, stackPtr(asm.R2, stRevKey)...)
	in = append(in, stackPtr(asm.R3, stRevVal)...)
	return append(in, asm.Mov.Imm(asm.R4, 0), asm.FnMapUpdateElem.Call())
}

// reverseInsns is recvmsg4/6 and getpeername4/6: a peer that is a backend this
// socket reached through a Service shows as the Service address.
func reverseInsns(v6 bool, m progMaps) asm.Instructions {
	in := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stRevKey, asm.R0, asm.DWord),
	}
	in = append(in, loadAddr(v6, stRevKey+8)...)
	in = append(in,
		asm.LoadMem(asm.R2, asm.R6, ctxUserPort, asm.Word),
		asm.StoreMem(asm.RFP, stRevKey+24, asm.R2, asm.Half),
		asm.StoreImm(asm.RFP, stRevKey+26, 0, asm.Half),
		asm.StoreImm(asm.RFP, stRevKey+28, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, m.revnat.FD()))
	in = append(in, stackPtr(asm.R2, stRevKey)...)
	in = append(in,
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"))
	in = append(in, storeAddr(v6, asm.R0)...)
	return append(in, asm.Mov.Imm(asm.R0, 1).WithSymbol("out"), asm.Return())
}
