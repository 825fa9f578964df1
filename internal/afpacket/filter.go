package afpacket

// Instruction is one instruction of a classic BPF program (struct
// sock_filter in include/uapi/linux/filter.h): the kernel runs a receive
// socket's program on every frame before it copies the frame into the
// ring, and a program that returns 0 keeps the frame out of it (RX.SetFilter).
type Instruction struct {
	Op     uint16 // BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K, ...
	Jt, Jf uint8  // for jumps: instructions skipped when true, when false
	K      uint32 // the operand
}

// MaxInstructions is the most instructions the kernel takes in a classic
// BPF program (BPF_MAXINSNS).
const MaxInstructions = 4096
