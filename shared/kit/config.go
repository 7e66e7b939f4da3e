package kit

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// ParseURL reads an http(s) base URL attribute such as api_url: raw, or
// def when raw is empty, without a trailing slash. Anything else is an
// InvalidConfig error naming attr.
func ParseURL(attr, raw, def string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		raw = def
	}
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, InvalidConfig(fmt.Sprintf("%s %q is not an http(s) URL", attr, raw),
			fmt.Sprintf("leave %s unset for %s, or give a full URL like it", attr, def))
	}
	return u, nil
}

// ParseDuration reads a duration attribute such as timeout: raw, or def
// when raw is empty. A value that is not a positive duration is an
// InvalidConfig error naming attr.
func ParseDuration(attr, raw string, def time.Duration) (time.Duration, error) {
	if strings.TrimSpace(raw) == "" {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(raw))
	if err != nil || d <= 0 {
		return 0, InvalidConfig(fmt.Sprintf("%s %q is not a positive duration", attr, raw),
			fmt.Sprintf(`use e.g. %q`, def.String()))
	}
	return d, nil
}
