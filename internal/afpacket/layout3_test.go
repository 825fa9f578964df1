package afpacket

import (
	"errors"
	"testing"
	"time"
)

func TestNewLayout3(t *testing.T) {
	tests := []struct {
		name        string
		size, count int
		page        int
		want        Layout
		wantErr     bool
	}{
		{name: "defaults", page: 4096,
			want: Layout{FrameSize: 256 << 10, FrameCount: 72, BlockSize: 256 << 10, BlockCount: 72}},
		{name: "one page", size: 4096, count: 2, page: 4096,
			want: Layout{FrameSize: 4096, FrameCount: 2, BlockSize: 4096, BlockCount: 2}},
		{name: "largest block", size: 4 << 20, count: 1, page: 4096,
			want: Layout{FrameSize: 4 << 20, FrameCount: 1, BlockSize: 4 << 20, BlockCount: 1}},
		{name: "smaller than a page", size: 2048, page: 4096, wantErr: true},
		{name: "not a power of two", size: 12 << 10, page: 4096, wantErr: true},
		{name: "larger than 4 MiB", size: 8 << 20, page: 4096, wantErr: true},
		{name: "negative count", count: -1, page: 4096, wantErr: true},
		{name: "more blocks than the kernel numbers", count: 1 << 16, page: 4096, wantErr: true},
		{name: "bad page size", page: 3000, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newLayout3(tt.size, tt.count, tt.page)
			if tt.wantErr {
				if !errors.Is(err, errConfig) {
					t.Fatalf("err = %v, want errConfig", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("newLayout3 = %+v, %v, want %+v", got, err, tt.want)
			}
		})
	}
}

func TestRetireTimeout(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want uint32
	}{
		{0, 1}, {time.Millisecond, 1}, {8 * time.Millisecond, 8}, {maxRetireTimeout, 65535},
	} {
		if got, err := retireTimeout(tt.d); err != nil || got != tt.want {
			t.Errorf("retireTimeout(%v) = %d, %v, want %d", tt.d, got, err, tt.want)
		}
	}
	for _, d := range []time.Duration{-time.Millisecond, time.Microsecond, 1500 * time.Microsecond, maxRetireTimeout + time.Millisecond} {
		if _, err := retireTimeout(d); !errors.Is(err, errConfig) {
			t.Errorf("retireTimeout(%v) = %v, want errConfig", d, err)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for s, want := range map[string]Version{"v2": V2, "V3": V3, "2": V2, "tpacket_v3": V3} {
		if got, err := ParseVersion(s); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v, want %v", s, got, err, want)
		}
		if got, _ := ParseVersion(want.String()); got != want {
			t.Errorf("ParseVersion(%v.String()) = %v", want, got)
		}
	}
	for _, s := range []string{"", "v1", "v4", "three"} {
		if _, err := ParseVersion(s); !errors.Is(err, errConfig) {
			t.Errorf("ParseVersion(%q) = %v, want errConfig", s, err)
		}
	}
	if s := Version(0).String(); s != "v2" {
		t.Errorf("Version(0) = %q, want v2 (the default)", s)
	}
}
