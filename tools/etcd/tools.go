//go:build tools

// Package tools pins etcd's server (go.etcd.io/etcd/server/v3, whose main package calls etcdmain).
package tools

import (
	_ "go.etcd.io/etcd/server/v3/etcdmain"
)
