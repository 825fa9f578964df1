//go:build linux

package afpacket

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rx3 is the consumer's walk over the blocks of a TPACKET_V3 ring.
//
// The kernel fills one block at a time, frame after frame, and hands the
// whole block over (block_status |= TP_STATUS_USER) when the next frame
// does not fit or the retire timeout fires; from then on the block's frame
// count is final. The consumer reads blocks in the kernel's order and gives
// a block back (block_status = TP_STATUS_KERNEL) once every frame in it has
// been handed out by Receive and released by Release. Blocks are given back
// in order too, so the kernel, which waits at the first block still held
// (it "freezes" and drops frames meanwhile), never waits for longer than it
// must.
//
//	rel: oldest block handed out whole, not given back yet
//	|          cur: the block being read (left frames remain from pos)
//	v          v
//	[ done ... ][ cur: read | left ][ kernel ... ]
type rx3 struct {
	cur    int    // index of the block being read, or to be opened next
	pos    int    // ring offset of cur's next frame, when left > 0
	left   int    // frames of cur not handed out yet; 0: cur not opened
	end    int    // ring offset of the end of cur, when left > 0
	losing uint32 // TP_STATUS_LOSING if cur's block status had it
	rel    int    // index of the oldest block not given back
	done   int    // blocks from rel on that are completely handed out
}

// blockStatus returns a pointer to the block_status word of the block at off.
func blockStatus(ring []byte, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&ring[off+blockStatusOff]))
}

// header3 returns the struct tpacket3_hdr of the frame at off.
func header3(ring []byte, off int) *unix.Tpacket3Hdr {
	return (*unix.Tpacket3Hdr)(unsafe.Pointer(&ring[off]))
}

// ready3 is RX.ready of a V3 ring: frames are ready if the
// block being read has some left, or the next block is the consumer's.
func (r *RX) ready3() bool {
	v := r.v3
	if v.left > 0 {
		return true
	}
	return v.done < len(r.s.offs) && atomic.LoadUint32(blockStatus(r.s.ring, r.s.offs[v.cur]))&unix.TP_STATUS_USER != 0
}

// collect3 hands out up to len(frames) frames of the blocks the kernel has
// handed over, in order.
func (r *RX) collect3(frames []Frame) int {
	v := r.v3
	ring, offs := r.s.ring, r.s.offs
	bs := r.s.layout.BlockSize
	n := 0
	for n < len(frames) {
		if v.left == 0 {
			// At most one lap: a block handed out already must not
			// be opened again before it has been given back.
			if v.done == len(offs) {
				break
			}
			boff := offs[v.cur]
			st := atomic.LoadUint32(blockStatus(ring, boff))
			if st&unix.TP_STATUS_USER == 0 {
				break
			}
			// The kernel wrote the block before publishing its status;
			// the atomic load above orders these reads after it.
			np := int(binary.NativeEndian.Uint32(ring[boff+numPktsOff:]))
			first := int(binary.NativeEndian.Uint32(ring[boff+firstPktOff:]))
			if np == 0 || first < blockDescLen || first > bs-tpacket3HdrLen {
				// Nothing this code can hand out (the kernel does not
				// retire empty blocks): done with it.
				v.finish(len(offs))
				continue
			}
			v.left, v.pos, v.end, v.losing = np, boff+first, boff+bs, st&unix.TP_STATUS_LOSING
		}
		off := v.pos
		h := header3(ring, off)
		f := &frames[n]
		st, mac, snap, room := h.Status, int(h.Mac), int(h.Snaplen), v.end-off
		if mac >= minMACOff3 && mac <= room {
			snap = min(snap, room-mac)
			f.VNet.Decode(ring[off+mac-VNetHdrLen : off+mac])
		} else {
			// Not a frame this code can parse: an empty frame.
			mac, snap = room, 0
			f.VNet = VNetHdr{}
		}
		f.Data = ring[off+mac : off+mac+snap : off+mac+snap]
		f.Len = int(h.Len)
		// The kernel sets TP_STATUS_USER in every frame's status, but
		// TP_STATUS_LOSING only in the block's.
		f.Status = st | unix.TP_STATUS_USER | v.losing
		f.PktType = ring[off+pktTypeOff3]
		f.VLANTCI, f.VLANTPID = 0, 0
		if st&unix.TP_STATUS_VLAN_VALID != 0 {
			f.VLANTCI = uint16(h.Hv1.Vlan_tci)
		}
		if st&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			f.VLANTPID = h.Hv1.Vlan_tpid
		}
		n++
		if v.left--; v.left == 0 {
			v.finish(len(offs))
			continue
		}
		next := int(h.Next_offset)
		if next < tpacket3HdrLen || next > v.end-off-tpacket3HdrLen {
			// A chain this code cannot follow: skip the rest of
			// the block rather than read past it.
			v.finish(len(offs))
			continue
		}
		v.pos += next
	}
	if n == 0 && v.done > 0 {
		// Only empty blocks: nothing to hand out, so nothing for a
		// Release to give back; give them back now.
		r.release3()
	}
	r.held = n
	return n
}

// finish marks the block being read as completely handed out and moves to
// the next of nblocks.
func (v *rx3) finish(nblocks int) {
	v.left = 0
	v.done++
	if v.cur++; v.cur == nblocks {
		v.cur = 0
	}
}

// release3 gives back to the kernel, in order, the blocks whose frames have
// all been handed out.
func (r *RX) release3() {
	v := r.v3
	ring, offs := r.s.ring, r.s.offs
	for ; v.done > 0; v.done-- {
		atomic.StoreUint32(blockStatus(ring, offs[v.rel]), unix.TP_STATUS_KERNEL)
		if v.rel++; v.rel == len(offs) {
			v.rel = 0
		}
	}
}
