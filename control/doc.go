// Package control is the control channel between gvsadm and the gvs
// daemon: the messages (message.go), the server gvs runs on its unix
// socket, and the client gvsadm uses.
//
// # Protocol (version 1)
//
// The transport is a unix stream socket, by default /run/gvs.sock (gvs
// --socket, or $GVS_SOCKET for both programs). Each message is one JSON
// object on one line, terminated by '\n', at most MaxMessageSize bytes. The
// client sends a Request; the server answers each with exactly one Reply,
// in order; a client may send several requests on one connection.
//
//	{"version":1,"op":"add-service","service":{"protocol":"tcp","addr":"192.168.150.100","port":80,"scheduler":"rr"}}
//	{"version":1}
//
//	{"version":1,"op":"add-dest","service":{"protocol":"tcp","addr":"192.168.150.100","port":80},
//	 "dest":{"addr":"192.168.150.12","port":80,"forward":"route","weight":1}}
//	{"version":1,"error":{"code":"EEXIST","message":"...","index":-1}}
//
// Every request carries the protocol version; a server refuses a version
// it does not speak with CodeVersion. Unknown fields are refused
// (CodeInvalid), so a newer client cannot have a field silently ignored.
// A request that is not valid JSON, too long, or refused for any reason
// changes nothing. OpBatch applies its Commands all or nothing; its error
// names the failing command by Index.
//
// # Who may connect
//
// The socket is created with mode 0600 and owned by the daemon's user
// (root). The server also checks each peer's credentials (SO_PEERCRED):
// only root and the daemon's own user are served, so a socket file made
// readable by mistake does not open the daemon to everyone.
package control
