//go:build !linux

package director

import "errors"

func dropPrivileges([]string) (Privileges, error) {
	return Privileges{}, errors.New("dropping capabilities is implemented for Linux only")
}
