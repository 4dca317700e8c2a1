// forkpeer is a test peer that speaks the wire of the two maintained Go
// groupcache forks, mailgun/groupcache v2 and groupcache/groupcache-go v3,
// for groupcached's mixed-cluster tests. The forks cannot be installed
// offline, so this is written from their documented behaviour and bytes
// captured from a real mailgun v2.6.0 node, not from their code. It uses
// only the standard library, Debian's golang/groupcache (its lru and
// singleflight packages) and tests/gonode, which it shares with
// tests/gopeer.
//
//	forkpeer -dialect mailgun|groupcache-go (-listen ADDR | LISTEN_FDS=1 and fd 3)
//	         [-self URL] -peers A,B,... -group NAME=ORIGIN ... [-cache-bytes N]
//	         [-replicas N] [-base-path P] [-ttl DUR]
//
// What it does as each fork does: the fork's ring; GET replies with expire
// (field 3) always present; 404 for a not-found load and 503 for other
// errors; a peer's 404 or 503 is final (no local load); every value fetched
// from a peer goes into the hot cache; mailgun rejects a value that has
// already expired; PUT is a Set (SetRequest body, key from the body), DELETE
// a Remove, groupcache-go's POST {group}/_remove-keys/ takes a JSON list and
// other methods get 405 there. The user API is tests/gopeer's
// (GET /cache/{g}/{k}, /stats, /healthz) plus PUT /cache/{g}/{k}[?ttl=DUR]
// (the fork's Group.Set) and DELETE /cache/{g}/{k} (its Group.Remove).
// -ttl makes every loaded value expire after DUR.
//
//	forkpeer -ring -dialect D -peers A,B,... [-replicas N]
//
// reads hex keys from stdin, one per line, and prints each key's owner.
package main

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/groupcache/lru"
	"github.com/golang/groupcache/singleflight"
	"groupcached/gonode"
)

var (
	dialect  = flag.String("dialect", "mailgun", "mailgun or groupcache-go")
	basePath = flag.String("base-path", "/_groupcache/", "peer protocol base path")
	ttl      = flag.Duration("ttl", 0, "lifetime of loaded values (0: never expire)")
	client   = &http.Client{Timeout: 10 * time.Second}
)

func v3() bool { return *dialect == "groupcache-go" }

// ---- the forks' ring ----

func fnv1(data []byte) uint64 {
	h := fnv.New64()
	h.Write(data)
	return h.Sum64()
}

type ring struct {
	points []int64
	owner  map[int64]string
}

// peerName is how the fork names a peer on its ring: the URL (mailgun) or
// host:port (groupcache-go).
func peerName(peer string) string {
	if !v3() {
		return peer
	}
	if u, err := url.Parse(peer); err == nil && u.Host != "" {
		return u.Host
	}
	return peer
}

func newRing(replicas int, peers []string) *ring {
	r := &ring{owner: map[int64]string{}}
	for _, peer := range peers {
		for i := 0; i < replicas; i++ {
			sum := md5.Sum([]byte(strconv.Itoa(i) + peerName(peer)))
			point := int64(fnv1([]byte(hex.EncodeToString(sum[:]))))
			r.points = append(r.points, point)
			r.owner[point] = peer
		}
	}
	sort.Slice(r.points, func(i, j int) bool { return r.points[i] < r.points[j] })
	return r
}

func (r *ring) get(key string) string {
	if len(r.points) == 0 {
		return ""
	}
	h := int64(fnv1([]byte(key)))
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i] >= h })
	if i == len(r.points) {
		i = 0
	}
	return r.owner[r.points[i]]
}

// ---- protobuf, by hand ----

func appendBytesField(out []byte, tag byte, b []byte) []byte {
	out = append(out, tag)
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

func encodeGetResponse(value []byte, expire int64) []byte {
	out := appendBytesField(nil, 0x0a, value)
	out = append(out, 0x18)
	return binary.AppendUvarint(out, uint64(expire))
}

func encodeSetRequest(group, key string, value []byte, expire int64) []byte {
	out := appendBytesField(nil, 0x0a, []byte(group))
	out = appendBytesField(out, 0x12, []byte(key))
	out = appendBytesField(out, 0x1a, value)
	out = append(out, 0x20)
	return binary.AppendUvarint(out, uint64(expire))
}

// decodeFields reads a protobuf message of length-delimited, varint and
// fixed64 fields into field number -> bytes or varint.
func decodeFields(b []byte) (map[int][]byte, map[int]uint64, error) {
	blobs, ints := map[int][]byte{}, map[int]uint64{}
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, nil, errors.New("bad tag")
		}
		b = b[n:]
		field, kind := int(tag>>3), tag&7
		switch kind {
		case 0:
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, nil, errors.New("bad varint")
			}
			ints[field], b = v, b[n:]
		case 1:
			if len(b) < 8 {
				return nil, nil, errors.New("short fixed64")
			}
			b = b[8:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || uint64(len(b)-n) < l {
				return nil, nil, errors.New("unexpected EOF")
			}
			blobs[field], b = b[n:n+int(l)], b[n+int(l):]
		default:
			return nil, nil, fmt.Errorf("unsupported wire type %d", kind)
		}
	}
	return blobs, ints, nil
}

// ---- caches ----

type entry struct {
	value  []byte
	expire int64 // Unix ns, 0 = never
}

type cacheStats struct {
	Bytes, Items, Gets, Hits, Evictions int64
}

type cache struct {
	lru   *lru.Cache
	stats cacheStats
}

func newCache() *cache {
	c := &cache{lru: lru.New(0)}
	c.lru.OnEvicted = func(key lru.Key, value interface{}) {
		c.stats.Bytes -= int64(len(key.(string)) + len(value.(entry).value))
		c.stats.Items--
		c.stats.Evictions++
	}
	return c
}

func (c *cache) get(key string) (entry, bool) {
	c.stats.Gets++
	v, ok := c.lru.Get(key)
	if !ok {
		return entry{}, false
	}
	e := v.(entry)
	if e.expire != 0 && e.expire < time.Now().UnixNano() {
		c.lru.Remove(key)
		return entry{}, false
	}
	c.stats.Hits++
	return e, true
}

func (c *cache) add(key string, e entry) {
	c.lru.Remove(key)
	c.lru.Add(key, e)
	c.stats.Bytes += int64(len(key) + len(e.value))
	c.stats.Items++
}

// ---- the group ----

var (
	errNotFound   = errors.New("not found")
	errRemoteCall = errors.New("remote call")
)

// statusError is a peer's or origin's refusal: 404 wraps errNotFound, 503
// errRemoteCall.
type statusError struct {
	kind error
	msg  string
}

func (e *statusError) Error() string { return e.msg }
func (e *statusError) Unwrap() error { return e.kind }

type group struct {
	name       string
	origin     string
	cacheBytes int64
	self       string
	peers      []string
	ring       *ring

	mu        sync.Mutex
	main, hot *cache
	flight    singleflight.Group

	gets, cacheHits, peerLoads, peerErrors, loads, loadsDeduped, localLoads, localLoadErrs, serverRequests int64
}

func (g *group) lookup(key string) (entry, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e, ok := g.main.get(key); ok {
		return e, true
	}
	return g.hot.get(key)
}

func (g *group) populate(c func() *cache, key string, e entry) {
	if g.cacheBytes <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c().add(key, e)
	for g.main.stats.Bytes+g.hot.stats.Bytes > g.cacheBytes {
		victim := g.main
		if g.hot.stats.Bytes > g.main.stats.Bytes/8 {
			victim = g.hot
		}
		victim.lru.RemoveOldest()
	}
}

func (g *group) removeLocal(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.main.lru.Remove(key)
	g.hot.lru.Remove(key)
}

func (g *group) mainCache() *cache { return g.main }
func (g *group) hotCache() *cache  { return g.hot }

func (g *group) get(key string) (entry, error) {
	atomic.AddInt64(&g.gets, 1)
	if e, ok := g.lookup(key); ok {
		atomic.AddInt64(&g.cacheHits, 1)
		return e, nil
	}
	atomic.AddInt64(&g.loads, 1)
	v, err := g.flight.Do(key, func() (interface{}, error) {
		if e, ok := g.lookup(key); ok {
			atomic.AddInt64(&g.cacheHits, 1)
			return e, nil
		}
		atomic.AddInt64(&g.loadsDeduped, 1)
		if owner := g.ring.get(key); owner != g.self {
			e, err := g.fetch(owner, key)
			if err == nil {
				atomic.AddInt64(&g.peerLoads, 1)
				g.populate(g.hotCache, key, e)
				return e, nil
			}
			if errors.Is(err, errNotFound) || errors.Is(err, errRemoteCall) {
				return nil, err
			}
			atomic.AddInt64(&g.peerErrors, 1)
		}
		e, err := g.loadLocal(key)
		if err != nil {
			atomic.AddInt64(&g.localLoadErrs, 1)
			return nil, err
		}
		atomic.AddInt64(&g.localLoads, 1)
		g.populate(g.mainCache, key, e)
		return e, nil
	})
	if err != nil {
		return entry{}, err
	}
	return v.(entry), nil
}

func (g *group) peerURL(peer, key string) string {
	return peer + *basePath + url.PathEscape(g.name) + "/" + url.PathEscape(key)
}

func send(method, target string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body == nil {
		req.Body = nil
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.Trim(string(data), "\n")
		switch resp.StatusCode {
		case http.StatusNotFound:
			return nil, &statusError{errNotFound, msg}
		case http.StatusServiceUnavailable:
			return nil, &statusError{errRemoteCall, msg}
		}
		return nil, fmt.Errorf("server returned: %v, %s", resp.Status, msg)
	}
	return data, nil
}

func (g *group) fetch(peer, key string) (entry, error) {
	data, err := send(http.MethodGet, g.peerURL(peer, key), nil)
	if err != nil {
		return entry{}, err
	}
	blobs, ints, err := decodeFields(data)
	if err != nil {
		return entry{}, err
	}
	e := entry{value: blobs[1], expire: int64(ints[3])}
	if !v3() && e.expire != 0 && e.expire < time.Now().UnixNano() {
		return entry{}, errors.New("peer returned expired value")
	}
	return e, nil
}

func (g *group) loadLocal(key string) (entry, error) {
	body, status, err := gonode.LoadOrigin(g.origin, g.name, key)
	if status == http.StatusNotFound {
		return entry{}, &statusError{errNotFound, err.Error()}
	}
	if err != nil {
		return entry{}, err
	}
	e := entry{value: body}
	if *ttl > 0 {
		e.expire = time.Now().Add(*ttl).UnixNano()
	}
	return e, nil
}

// set is the fork's Group.Set: mailgun PUTs to the owner alone (and keeps a
// hot copy with hot); groupcache-go PUTs to the owner, then to every other
// peer.
func (g *group) set(key string, value []byte, expire int64, hot bool) error {
	_, err := g.flight.Do("set:"+key, func() (interface{}, error) {
		e := entry{value: value, expire: expire}
		owner := g.ring.get(key)
		body := encodeSetRequest(g.name, key, value, expire)
		if !v3() {
			if owner != g.self {
				if _, err := send(http.MethodPut, g.peerURL(owner, key), body); err != nil {
					return nil, err
				}
				if hot {
					g.populate(g.hotCache, key, e)
				}
				return nil, nil
			}
			g.populate(g.mainCache, key, e)
			return nil, nil
		}
		if owner != g.self {
			if _, err := send(http.MethodPut, g.peerURL(owner, key), body); err != nil {
				return nil, err
			}
		}
		g.setLocal(key, e)
		var wg sync.WaitGroup
		for _, peer := range g.peers {
			if peer == g.self || peer == owner {
				continue
			}
			wg.Add(1)
			go func(peer string) {
				defer wg.Done()
				if _, err := send(http.MethodPut, g.peerURL(peer, key), body); err != nil {
					log.Printf("set on %s: %v", peer, err)
				}
			}(peer)
		}
		wg.Wait()
		return nil, nil
	})
	return err
}

// setLocal is a remote Set arriving: mailgun stores in main; groupcache-go
// also drops the hot copy.
func (g *group) setLocal(key string, e entry) {
	if v3() {
		g.mu.Lock()
		g.hot.lru.Remove(key)
		g.mu.Unlock()
	}
	g.populate(g.mainCache, key, e)
}

// remove is the fork's Group.Remove: a DELETE to the owner first, then to
// every other peer for its hot copy.
func (g *group) remove(key string) error {
	_, err := g.flight.Do("remove:"+key, func() (interface{}, error) {
		owner := g.ring.get(key)
		if owner != g.self {
			if _, err := send(http.MethodDelete, g.peerURL(owner, key), nil); err != nil {
				return nil, err
			}
		}
		g.removeLocal(key)
		var mu sync.Mutex
		var last error
		var wg sync.WaitGroup
		for _, peer := range g.peers {
			if peer == owner || (v3() && peer == g.self) {
				continue
			}
			wg.Add(1)
			go func(peer string) {
				defer wg.Done()
				if _, err := send(http.MethodDelete, g.peerURL(peer, key), nil); err != nil {
					mu.Lock()
					last = err
					mu.Unlock()
				}
			}(peer)
		}
		wg.Wait()
		return nil, last
	})
	return err
}

func (g *group) stats() map[string]interface{} {
	g.mu.Lock()
	main, hot := g.main.stats, g.hot.stats
	g.mu.Unlock()
	return map[string]interface{}{
		"Gets": atomic.LoadInt64(&g.gets), "CacheHits": atomic.LoadInt64(&g.cacheHits),
		"PeerLoads": atomic.LoadInt64(&g.peerLoads), "PeerErrors": atomic.LoadInt64(&g.peerErrors),
		"Loads": atomic.LoadInt64(&g.loads), "LoadsDeduped": atomic.LoadInt64(&g.loadsDeduped),
		"LocalLoads": atomic.LoadInt64(&g.localLoads), "LocalLoadErrs": atomic.LoadInt64(&g.localLoadErrs),
		"ServerRequests": atomic.LoadInt64(&g.serverRequests),
		"MainCache":      main, "HotCache": hot,
	}
}

// ---- HTTP ----

type node struct {
	groups map[string]*group
}

// route splits the path after prefix into group and key, answering 400 or
// 404 itself when it cannot.
func (n *node) route(w http.ResponseWriter, r *http.Request, prefix string) (*group, string, bool) {
	name, key, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, prefix), "/")
	if !ok {
		http.Error(w, "bad request", http.StatusBadRequest)
		return nil, "", false
	}
	g := n.groups[name]
	if g == nil {
		http.Error(w, "no such group: "+name, http.StatusNotFound)
		return nil, "", false
	}
	return g, key, true
}

func (n *node) servePeer(w http.ResponseWriter, r *http.Request) {
	g, key, ok := n.route(w, r, *basePath)
	if !ok {
		return
	}
	switch {
	case r.Method == http.MethodPut:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		blobs, ints, err := decodeFields(body)
		if err == nil && blobs[2] == nil {
			err = errors.New("missing key")
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		g.setLocal(string(blobs[2]), entry{value: blobs[3], expire: int64(ints[4])})
	case r.Method == http.MethodDelete:
		g.removeLocal(key)
	case v3() && r.Method == http.MethodPost:
		if key != "_remove-keys/" {
			http.Error(w, "invalid path for POST method", http.StatusNotFound)
			return
		}
		var request struct {
			Group string   `json:"group,omitempty"`
			Keys  []string `json:"keys,omitempty"`
		}
		if err := json.NewDecoder(r.Body).Decode(&request); err != nil {
			http.Error(w, "invalid request: "+err.Error(), http.StatusBadRequest)
			return
		}
		for _, k := range request.Keys {
			g.removeLocal(k)
		}
	case v3() && r.Method != http.MethodGet:
		http.Error(w, "Only GET, DELETE, PUT, POST are supported", http.StatusMethodNotAllowed)
	default:
		atomic.AddInt64(&g.serverRequests, 1)
		e, err := g.get(key)
		if err != nil {
			status := http.StatusServiceUnavailable
			if errors.Is(err, errNotFound) {
				status = http.StatusNotFound
			}
			http.Error(w, err.Error(), status)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(encodeGetResponse(e.value, e.expire))
	}
}

func (n *node) serveUser(w http.ResponseWriter, r *http.Request) {
	g, key, ok := n.route(w, r, "/cache/")
	if !ok {
		return
	}
	var err error
	switch r.Method {
	case http.MethodPut:
		var value []byte
		if value, err = io.ReadAll(r.Body); err == nil {
			var expire int64
			if text := r.URL.Query().Get("ttl"); text != "" {
				d, perr := time.ParseDuration(text)
				if perr != nil {
					http.Error(w, perr.Error(), http.StatusBadRequest)
					return
				}
				expire = time.Now().Add(d).UnixNano()
			}
			err = g.set(key, value, expire, r.URL.Query().Get("hot") == "1")
		}
	case http.MethodDelete:
		err = g.remove(key)
	default:
		var e entry
		if e, err = g.get(key); err == nil {
			if e.expire != 0 {
				left := time.Until(time.Unix(0, e.expire)) / time.Second
				w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", left))
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(e.value)
			return
		}
		if errors.Is(err, errNotFound) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	io.WriteString(w, "ok\n")
}

func main() {
	listen := flag.String("listen", "", "address to listen on")
	self := flag.String("self", "", "this node's URL (default http://LISTEN)")
	peerList := flag.String("peers", "", "comma-separated peer URLs, in ring order")
	cacheBytes := flag.Int64("cache-bytes", 64<<20, "cache size per group")
	replicas := flag.Int("replicas", 50, "ring replicas")
	ringMode := flag.Bool("ring", false, "print owners of hex keys read from stdin")
	var groups gonode.GroupFlags
	flag.Var(&groups, "group", "NAME=ORIGIN_TEMPLATE (repeatable)")
	flag.Parse()
	if *dialect != "mailgun" && *dialect != "groupcache-go" {
		log.Fatalf("bad -dialect %q", *dialect)
	}
	var peers []string
	if *peerList != "" {
		peers = strings.Split(*peerList, ",")
	}
	if *ringMode {
		gonode.PrintOwners(newRing(*replicas, peers).get)
		return
	}
	ln, err := gonode.Listener(*listen)
	if err != nil {
		log.Fatal(err)
	}
	if *self == "" {
		*self = "http://" + ln.Addr().String()
	}
	if len(peers) == 0 {
		peers = []string{*self}
	}
	r := newRing(*replicas, peers)
	n := &node{groups: map[string]*group{}}
	for _, spec := range groups {
		name, origin, ok := strings.Cut(spec, "=")
		if !ok || name == "" {
			log.Fatalf("bad -group %q", spec)
		}
		n.groups[name] = &group{name: name, origin: origin, cacheBytes: *cacheBytes, self: *self,
			peers: peers, ring: r, main: newCache(), hot: newCache()}
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch path := r.URL.Path; {
		case strings.HasPrefix(path, *basePath):
			n.servePeer(w, r)
		case path == "/healthz":
			io.WriteString(w, "ok\n")
		case path == "/stats":
			stats := map[string]interface{}{}
			for name, g := range n.groups {
				stats[name] = g.stats()
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]interface{}{"groups": stats})
		case strings.HasPrefix(path, "/cache/"):
			n.serveUser(w, r)
		default:
			http.NotFound(w, r)
		}
	})
	fmt.Printf("listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: handler}
	log.Fatal(srv.Serve(ln))
}
