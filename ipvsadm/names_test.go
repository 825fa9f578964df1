package ipvsadm

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSystemNamesServices(t *testing.T) {
	file := filepath.Join(t.TempDir(), "services")
	data := "# services\n" +
		"http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP\n" +
		"http\t\t80/udp\n" +
		"web\t\t80/tcp\n" + // a later name for the same port loses
		"domain\t\t53/udp\n" +
		"bad\t\tx/tcp\n" +
		"short\n" +
		"sctpish\t\t9/sctp\n"
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &SystemNames{ServicesFile: file}
	for _, tt := range []struct {
		name, proto string
		port        uint16
		ok          bool
	}{
		{"http", "tcp", 80, true},
		{"www", "tcp", 80, true},
		{"web", "tcp", 80, true},
		{"http", "udp", 80, true},
		{"domain", "udp", 53, true},
		{"domain", "tcp", 0, false},
		{"bad", "tcp", 0, false},
		{"sctpish", "sctp", 9, true},
	} {
		if p, ok := n.PortByService(tt.name, tt.proto); p != tt.port || ok != tt.ok {
			t.Errorf("PortByService(%s/%s) = %d, %v", tt.name, tt.proto, p, ok)
		}
	}
	if s, ok := n.ServiceByPort(80, "tcp"); s != "http" || !ok {
		t.Errorf("ServiceByPort(80/tcp) = %q, %v", s, ok)
	}
	if _, ok := n.ServiceByPort(81, "tcp"); ok {
		t.Error("ServiceByPort(81/tcp) resolved")
	}
	// A missing file resolves nothing.
	m := &SystemNames{ServicesFile: filepath.Join(t.TempDir(), "none")}
	if _, ok := m.PortByService("http", "tcp"); ok {
		t.Error("missing file resolved http")
	}
}
