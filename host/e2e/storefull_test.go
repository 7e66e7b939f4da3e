package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size at dir for the test.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("this test needs a tmpfs (run as root): mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// fill writes a file into dir until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !strings.Contains(err.Error(), "no space") {
				t.Fatalf("filling %s: %v", path, err)
			}
			return
		}
	}
}

// With the state dir on a full tmpfs, status shows the store failing and
// /readyz is 503; once space returns the store recovers by itself.
func TestFullDiskShowsInStatusAndRecovers(t *testing.T) {
	e := newEnv(t)
	e.install("http", "http")
	web := freeAddr(t)
	state := filepath.Join(e.dir, "state")
	mountTmpfs(t, state, "4m")
	e.writeConfig(httpPlatform("web", web, ""))
	e.start()
	e.waitPlatform("web", 20*time.Second, inState("running"))
	if code, body := post(t, web, `{"session":"d","text":"before"}`); code != 200 {
		t.Fatalf("before the disk fills: %d %v", code, body)
	}
	filler := filepath.Join(state, "filler")
	fill(t, filler)

	big := strings.Repeat("y", 60000)
	code, body := post(t, web, `{"session":"d","text":"`+big+`"}`, "Content-Type", "application/json")
	if code == 200 {
		t.Fatalf("a turn was answered with the disk full (it cannot have been recorded)")
	}
	if !strings.Contains(fmt.Sprint(body["error"]), "no space") {
		t.Fatalf("full disk answered %d %v, want the reason", code, body)
	}
	var st struct {
		Store struct {
			State     string `json:"state"`
			LastError string `json:"last_error"`
			FreeBytes uint64 `json:"free_bytes"`
		} `json:"store"`
	}
	readStatus := func() {
		_, raw := get(t, "http://"+e.admin+"/v1/status")
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			t.Fatal(err)
		}
	}
	readStatus()
	if st.Store.State != "failing" || !strings.Contains(st.Store.LastError, "no space") {
		t.Fatalf("store status with a full disk = %+v", st.Store)
	}
	if code, body := get(t, "http://"+e.admin+"/readyz"); code != 503 || !strings.Contains(body, "store") {
		t.Fatalf("/readyz with a full disk = %d %s, want 503 naming the store", code, body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the store to recover by itself", func() bool {
		code, _ := get(t, "http://"+e.admin+"/readyz")
		return code == 200
	})
	readStatus()
	if st.Store.State != "ok" || st.Store.FreeBytes == 0 || !strings.Contains(st.Store.LastError, "no space") {
		t.Fatalf("store status after recovery = %+v, want ok, free space, and the last error kept", st.Store)
	}
	if code, body := post(t, web, `{"session":"d","text":"after"}`); code != 200 || body["reply"] != "echo: after" {
		t.Fatalf("after space returned: %d %v", code, body)
	}
}
