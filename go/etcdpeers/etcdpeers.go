// Package etcdpeers keeps a groupcache peer pool in step with an etcd
// registry, by exactly the rules groupcached's --etcd follows, so Go nodes
// and groupcached nodes that share the registry build the same ring.
//
// Key layout: each node puts {prefix}{url} = {url} under a lease it keeps
// alive. The peer list is the sorted, de-duplicated set of non-empty values
// under the prefix, and is passed to the pool's Set on every change.
//
// One session: connect, grant a lease, register, list the prefix, watch it
// from the listing's revision + 1 (so no change is missed) while keeping the
// lease alive. Any failure (etcd down, lease lost, no keep-alive reply for a
// whole TTL, watch cancelled or compacted, this node's key deleted) ends the
// session; the loop keeps the last peer list, backs off (up to 2 s) and
// starts a fresh session, which registers again. Close revokes the lease so
// the other nodes drop this one at once.
//
// Use it with golang/groupcache's *HTTPPool, or anything with a
// Set(...string) method:
//
//	pool := groupcache.NewHTTPPool(self)
//	reg, err := etcdpeers.Register(self, pool, etcdpeers.Options{
//		Endpoints: []string{"http://127.0.0.1:2379"},
//	})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer reg.Close() // revokes the lease
//
// It builds in GOPATH mode against Debian's golang-etcd-server-dev (etcd
// 3.4's go.etcd.io/etcd/clientv3).
package etcdpeers

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/etcdserver/api/v3rpc/rpctypes"
	"go.etcd.io/etcd/pkg/logutil"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Setter is a peer pool whose whole peer list Set replaces, as
// golang/groupcache's *HTTPPool.
type Setter interface {
	Set(peers ...string)
}

// The defaults of groupcached's --etcd-prefix and --etcd-ttl.
const (
	DefaultPrefix = "/groupcache/peers/"
	DefaultTTL    = 10 * time.Second
)

const (
	// maxBackoff is the longest wait between two attempts to reach etcd.
	maxBackoff = 2 * time.Second
	// callTimeout is the deadline of any single etcd call.
	callTimeout = 2 * time.Second
)

// Options say where and how a node registers.
type Options struct {
	// Endpoints are etcd's client URLs (required).
	Endpoints []string
	// Prefix is the key prefix; DefaultPrefix if empty.
	Prefix string
	// TTL is the lease TTL asked for, at least 1 s; DefaultTTL if zero.
	// etcd may grant more.
	TTL time.Duration
	// Logf receives one line per session start, end and peer list change;
	// log.Printf if nil.
	Logf func(format string, args ...interface{})
}

// Status is what a node knows about its registration, in the shape of the
// "etcd" object of groupcached's GET /peers.
type Status struct {
	Endpoints []string `json:"endpoints"`
	Prefix    string   `json:"prefix"`
	// Connected is true while a session is registered and watching.
	Connected bool `json:"connected"`
	// LeaseID is the lease this node's key is attached to, if any.
	LeaseID *int64 `json:"lease_id"`
	// Revision is the etcd revision of the last peer list seen.
	Revision int64 `json:"revision"`
	// LastError says why the last session ended, if it did.
	LastError *string `json:"last_error"`
}

// Registry keeps one node registered and its pool's peer list current,
// until Close.
type Registry struct {
	self string
	// key is {prefix}{self}.
	key  string
	opts Options
	pool Setter

	mu     sync.Mutex
	peers  []string
	status Status

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	// Owned by the run goroutine: the current lease and the client that
	// holds it, for revoking.
	client *clientv3.Client
	lease  clientv3.LeaseID
}

// Why a session ended, besides etcd's own errors.
var (
	errKeepAliveSilent = errors.New("no keep-alive reply within the lease TTL; etcd is unreachable")
	errWatchEnded      = errors.New("watch ended")
	errDeregistered    = errors.New("this node's key was deleted")
)

// Register starts keeping self registered under opts.Prefix and pool's peer
// list in step with the registry, in the background. The pool is left as
// it is until etcd first answers. It fails only on bad arguments.
func Register(self string, pool Setter, opts Options) (*Registry, error) {
	if self == "" {
		return nil, errors.New("etcdpeers: self URL is empty")
	}
	if pool == nil {
		return nil, errors.New("etcdpeers: pool is nil")
	}
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("etcdpeers: no etcd endpoints")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.TTL < time.Second {
		return nil, fmt.Errorf("etcdpeers: TTL %v is under 1s", opts.TTL)
	}
	if opts.Logf == nil {
		opts.Logf = log.Printf
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &Registry{
		self: self,
		key:  opts.Prefix + self,
		opts: opts,
		pool: pool,
		status: Status{
			Endpoints: append([]string(nil), opts.Endpoints...),
			Prefix:    opts.Prefix,
		},
		stop: stop,
		done: make(chan struct{}),
	}
	go r.run(ctx)
	return r, nil
}

// Peers is the last peer list passed to the pool (nil before etcd first
// answered).
func (r *Registry) Peers() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.peers...)
}

// Status is the registration's current state.
func (r *Registry) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.Endpoints = append([]string(nil), s.Endpoints...)
	return s
}

// Close stops following etcd and revokes the lease, so the other nodes drop
// this one at once. It waits for etcd at most 2 s for a connection attempt
// under way and 2 s for the revocation. The pool keeps its last peer list.
// Calling it again does nothing.
func (r *Registry) Close() {
	r.closeOnce.Do(func() {
		r.stop()
		<-r.done
	})
}

// run starts sessions until ctx is cancelled, then deregisters.
func (r *Registry) run(ctx context.Context) {
	defer close(r.done)
	backoff := 100 * time.Millisecond
	for {
		err := r.session(ctx)
		if ctx.Err() != nil {
			break
		}
		r.opts.Logf("etcdpeers: etcd session ended; keeping the last peer list: %v", err)
		r.mu.Lock()
		wasConnected := r.status.Connected
		text := err.Error()
		r.status.Connected = false
		r.status.LastError = &text
		r.mu.Unlock()
		if wasConnected {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		backoff *= 2
		if backoff > maxBackoff {
			backoff = maxBackoff
		}
	}
	r.deregister()
}

// session registers, lists and watches; it returns only when it fails or
// ctx is cancelled.
func (r *Registry) session(ctx context.Context) error {
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   r.opts.Endpoints,
		DialTimeout: callTimeout,
		DialOptions: []grpc.DialOption{grpc.WithBlock()},
		LogConfig:   quietLog(),
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, callTimeout)
	}

	// Register under a fresh lease, then drop the previous one (if etcd
	// kept it) so it cannot linger.
	asked := int64(r.opts.TTL / time.Second)
	c, done := call()
	granted, err := client.Grant(c, asked)
	done()
	if err != nil {
		client.Close()
		return err
	}
	// etcd may grant more than asked (it has a minimum TTL).
	lease, ttl := granted.ID, time.Duration(granted.TTL)*time.Second
	if ttl < time.Second {
		ttl = r.opts.TTL // never granted; keeps the ticker below valid
	}
	c, done = call()
	_, err = client.Put(c, r.key, r.self, clientv3.WithLease(lease))
	done()
	if err != nil {
		client.Close()
		return err
	}
	oldClient, oldLease := r.client, r.lease
	r.client, r.lease = client, lease
	if oldClient != nil {
		// Through the new client: the old one may still be reconnecting.
		c, done = call()
		client.Revoke(c, oldLease)
		done()
		oldClient.Close()
	}

	// List, then watch from just after the listing.
	c, done = call()
	listing, err := client.Get(c, r.opts.Prefix, clientv3.WithPrefix())
	done()
	if err != nil {
		return err
	}
	revision := listing.Header.Revision
	members := map[string]string{}
	for _, kv := range listing.Kvs {
		members[string(kv.Key)] = string(kv.Value)
	}
	watch := client.Watch(ctx, r.opts.Prefix, clientv3.WithPrefix(), clientv3.WithRev(revision+1))
	r.publish(members, revision)
	r.mu.Lock()
	id := int64(lease)
	r.status.Connected = true
	r.status.LeaseID = &id
	r.status.LastError = nil
	r.mu.Unlock()
	r.opts.Logf("etcdpeers: registered %s under lease %x", r.key, id)

	// A hung etcd or a silent partition keeps connections open but answers
	// nothing: once a whole TTL passes without a keep-alive reply, the
	// lease is gone for sure and the session is over.
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	leaseExpires := time.NewTimer(ttl)
	defer leaseExpires.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			c, done := call()
			reply, err := client.KeepAliveOnce(c, lease)
			done()
			if err == rpctypes.ErrLeaseNotFound {
				return fmt.Errorf("lease %x expired or was revoked", id)
			}
			if err != nil {
				return err
			}
			if !leaseExpires.Stop() {
				<-leaseExpires.C
			}
			leaseExpires.Reset(time.Duration(reply.TTL) * time.Second)
		case <-leaseExpires.C:
			return errKeepAliveSilent
		case reply, ok := <-watch:
			if !ok {
				return errWatchEnded
			}
			if reply.Canceled || reply.CompactRevision > 0 {
				return fmt.Errorf("watch cancelled (compacted at %d): %v", reply.CompactRevision, reply.Err())
			}
			if err := reply.Err(); err != nil {
				return err
			}
			for _, event := range reply.Events {
				revision = event.Kv.ModRevision
				switch event.Type {
				case clientv3.EventTypePut:
					members[string(event.Kv.Key)] = string(event.Kv.Value)
				case clientv3.EventTypeDelete:
					delete(members, string(event.Kv.Key))
				}
			}
			if len(reply.Events) > 0 {
				r.publish(members, revision)
			}
			if _, ok := members[r.key]; !ok {
				return errDeregistered
			}
		}
	}
}

// publish passes the sorted, de-duplicated, non-empty values to the pool if
// they changed.
func (r *Registry) publish(members map[string]string, revision int64) {
	seen := map[string]bool{}
	list := []string{}
	for _, url := range members {
		if url != "" && !seen[url] {
			seen[url] = true
			list = append(list, url)
		}
	}
	sort.Strings(list)
	r.mu.Lock()
	r.status.Revision = revision
	changed := r.peers == nil || !equal(list, r.peers)
	if changed {
		r.peers = list
	}
	r.mu.Unlock()
	if changed {
		r.opts.Logf("etcdpeers: peer list from etcd at revision %d: %v", revision, list)
		r.pool.Set(list...)
	}
}

// deregister revokes the lease so the other nodes drop this one at once.
func (r *Registry) deregister() {
	if r.client != nil {
		ctx, done := context.WithTimeout(context.Background(), callTimeout)
		_, err := r.client.Revoke(ctx, r.lease)
		done()
		if err != nil {
			r.opts.Logf("etcdpeers: could not revoke the lease; it expires by itself: %v", err)
		} else {
			r.opts.Logf("etcdpeers: lease %x revoked", int64(r.lease))
		}
		r.client.Close()
		r.client = nil
	}
	r.mu.Lock()
	r.status.Connected = false
	r.status.LeaseID = nil
	r.mu.Unlock()
}

// quietLog keeps etcd's client from logging its retries: sessions report
// their own failures through Options.Logf.
func quietLog() *zap.Config {
	config := logutil.DefaultZapLoggerConfig
	config.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	return &config
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
