package main

import (
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisTarget is what REDIS_URL names: one server, a primary managed by
// Sentinel, or a Redis Cluster. The scheme says which:
//
//	redis://host:6379/0                                  one server (rediss:// for TLS)
//	redis+sentinel://s1:26379?addr=s2:26379&master_name=mymaster
//	                                                     Sentinels and the primary's name (go-redis's failover client)
//	redis+cluster://n1:6379?addr=n2:6379&addr=n3:6379    cluster seed nodes
//
// rediss+sentinel:// and rediss+cluster:// are the same with TLS. Query
// parameters are go-redis's (dial_timeout, read_timeout, ...).
type redisTarget struct {
	single   *redis.Options
	sentinel *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

const redisURLForms = "want redis://host:6379/0, redis+sentinel://sentinel1:26379?addr=sentinel2:26379&master_name=mymaster or redis+cluster://node1:6379?addr=node2:6379 (rediss for TLS)"

// parseRedisURL reads REDIS_URL. Its errors never contain the URL (it
// may hold a password).
func parseRedisURL(raw string) (redisTarget, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return redisTarget{}, errors.New("not a Redis URL (" + redisURLForms + ")")
	}
	base, mode, _ := strings.Cut(scheme, "+")
	if base != "redis" && base != "rediss" {
		return redisTarget{}, errors.New("scheme must be redis, rediss, redis+sentinel or redis+cluster (" + redisURLForms + ")")
	}
	host, _, _ := strings.Cut(rest, "/")
	host, _, _ = strings.Cut(host, "?")
	if i := strings.LastIndex(host, "@"); i >= 0 {
		host = host[i+1:]
	}
	if host == "" {
		return redisTarget{}, errors.New("has no host (" + redisURLForms + ")")
	}
	u := base + "://" + rest
	var t redisTarget
	var err error
	switch mode {
	case "":
		t.single, err = redis.ParseURL(u)
	case "sentinel":
		if t.sentinel, err = redis.ParseFailoverURL(u); err == nil && t.sentinel.MasterName == "" {
			return redisTarget{}, errors.New("redis+sentinel:// needs ?master_name=<the primary's name in Sentinel>")
		}
	case "cluster":
		t.cluster, err = redis.ParseClusterURL(u)
	default:
		return redisTarget{}, errors.New("scheme must be redis, rediss, redis+sentinel or redis+cluster (" + redisURLForms + ")")
	}
	if err != nil {
		return redisTarget{}, errors.New("not a valid Redis URL: " + redisErrorText(err) + " (" + redisURLForms + ")")
	}
	return t, nil
}

// redisErrorText keeps go-redis's parse error only when it cannot carry
// the URL's password (it names parameters, not values, in that case).
func redisErrorText(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "@") || strings.Contains(msg, "://") {
		return "unreadable"
	}
	return msg
}

// client makes the go-redis client of t, each call bounded by the
// caller's context.
func (t redisTarget) client() redis.UniversalClient {
	switch {
	case t.sentinel != nil:
		t.sentinel.ContextTimeoutEnabled = true
		return redis.NewFailoverClient(t.sentinel)
	case t.cluster != nil:
		t.cluster.ContextTimeoutEnabled = true
		return redis.NewClusterClient(t.cluster)
	default:
		t.single.ContextTimeoutEnabled = true
		return redis.NewClient(t.single)
	}
}
