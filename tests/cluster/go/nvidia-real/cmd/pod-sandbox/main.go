// Command pod-sandbox runs one chart pod of a simulated node (EMULATION of a container runtime's
// pod sandbox, for kubelet-device-emulator): PID 1 of the pod's own mount and PID namespaces
// (the emulator starts it with CLONE_NEWNS|CLONE_NEWPID), it makes its mounts private, mounts
// its own /proc, bind-mounts the pod's host paths that NVIDIA's binaries use at fixed locations
// (/var/lib/kubelet/device-plugins, GFD's features.d), runs the init containers in order and
// then the containers, restarting a container that exits as kubelet does (restartPolicy Always,
// backoff capped at 10 s). One PID namespace per pod is what the chart's shareProcessNamespace
// asks for: config-manager finds nvidia-device-plugin by name to send it SIGHUP, and sees no
// other node's plugin. When it exits, the kernel kills every process left in its namespace.
//
// Its own small program, not a mode of the emulator: every node runs two of these for as long
// as its chart pods live, and the emulator's client-go packages cost ~25 MiB per process.
//
// Usage: pod-sandbox SPEC.json
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"gpu-slicing-eks/tests/cluster/go/nvidia-real/internal/podsandbox"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: pod-sandbox SPEC.json (started by kubelet-device-emulator)")
		os.Exit(2)
	}
	if err := runSandbox(os.Args[1]); err != nil {
		log.Fatal(err)
	}
}

// enterNamespaces does what `unshare --propagation private --mount-proc` did: this process is
// PID 1 of fresh mount and PID namespaces; nothing it mounts may reach this machine's
// namespace, and ps/pgrep inside (config-manager) must see only the pod's processes.
func enterNamespaces() error {
	if os.Getpid() != 1 {
		return fmt.Errorf("not PID 1 of a new PID namespace (started outside kubelet-device-emulator?)")
	}
	if err := syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NOEXEC|syscall.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	return nil
}

// makeTarget makes a mount point. Where it cannot be made because its parent is in a filesystem
// that refuses new entries (sysfs: this machine may have no /sys/class/dmi), the nearest existing
// ancestor is shadowed, in this mount namespace only, by a tmpfs holding the same entries (each
// bind-mounted from the original, symlinks copied), in which the mount point can be made.
func makeTarget(target string) error {
	if err := os.MkdirAll(target, 0o755); err == nil {
		return nil
	}
	ancestor := filepath.Dir(target)
	for {
		if _, err := os.Stat(ancestor); err == nil {
			break
		}
		ancestor = filepath.Dir(ancestor)
	}
	entries, err := os.ReadDir(ancestor)
	if err != nil {
		return err
	}
	staging, err := os.MkdirTemp("", "pod-sandbox-")
	if err != nil {
		return err
	}
	defer os.Remove(staging)
	if err := syscall.Mount(ancestor, staging, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", ancestor, staging, err)
	}
	defer func() { _ = syscall.Unmount(staging, syscall.MNT_DETACH) }()
	if err := syscall.Mount("tmpfs", ancestor, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("tmpfs on %s: %w", ancestor, err)
	}
	for _, e := range entries {
		from, to := filepath.Join(staging, e.Name()), filepath.Join(ancestor, e.Name())
		switch {
		case e.Type()&os.ModeSymlink != 0:
			link, err := os.Readlink(from)
			if err == nil {
				err = os.Symlink(link, to)
			}
			if err != nil {
				return err
			}
			continue
		case e.IsDir():
			err = os.Mkdir(to, 0o755)
		default:
			err = os.WriteFile(to, nil, 0o644)
		}
		if err != nil {
			return err
		}
		if err := syscall.Mount(from, to, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", from, to, err)
		}
	}
	return os.MkdirAll(target, 0o755)
}

func runSandbox(specPath string) error {
	data, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var spec podsandbox.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return err
	}
	log.SetPrefix(fmt.Sprintf("sandbox %s: ", spec.Pod))
	if err := enterNamespaces(); err != nil {
		return err
	}
	for _, b := range spec.Binds {
		// hostPath DirectoryOrCreate: kubelet would create the target on the host as well.
		if err := os.MkdirAll(b.Source, 0o755); err != nil {
			return err
		}
		if err := makeTarget(b.Target); err != nil {
			return err
		}
		if err := syscall.Mount(b.Source, b.Target, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", b.Source, b.Target, err)
		}
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	stopping := make(chan struct{})
	go func() { <-stop; close(stopping) }()

	for _, c := range spec.InitContainers {
		for backoff := time.Second; ; backoff = min(2*backoff, 10*time.Second) {
			code := runContainer(c, stopping)
			if code == 0 {
				break
			}
			log.Printf("init container %s exited %d; restarting in %s", c.Name, code, backoff)
			select {
			case <-stopping:
				return nil
			case <-time.After(backoff):
			}
		}
	}
	var wg sync.WaitGroup
	for _, c := range spec.Containers {
		wg.Add(1)
		go func(c podsandbox.Container) {
			defer wg.Done()
			for backoff := time.Second; ; backoff = min(2*backoff, 10*time.Second) {
				code := runContainer(c, stopping)
				select {
				case <-stopping:
					return
				default:
				}
				log.Printf("container %s exited %d; restarting in %s", c.Name, code, backoff)
				select {
				case <-stopping:
					return
				case <-time.After(backoff):
				}
			}
		}(c)
	}
	wg.Wait()
	return nil
}

// runContainer runs one container process to its end and returns its exit code; on stop it
// gets SIGTERM (and SIGKILL 5 s later).
func runContainer(c podsandbox.Container, stopping <-chan struct{}) int {
	if err := os.MkdirAll(filepath.Dir(c.Log), 0o755); err != nil {
		log.Printf("%s: %v", c.Name, err)
		return 1
	}
	out, err := os.OpenFile(c.Log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Printf("%s: %v", c.Name, err)
		return 1
	}
	defer out.Close()
	fmt.Fprintf(out, "=== %s start %s %v\n", time.Now().UTC().Format(time.RFC3339Nano), c.Path, c.Args)
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Args[0] = c.Argv0
	cmd.Env = c.Env
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(out, "=== start failed: %v\n", err)
		return 127
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-stopping:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
			}
		case <-done:
		}
	}()
	err = cmd.Wait()
	close(done)
	code := cmd.ProcessState.ExitCode()
	fmt.Fprintf(out, "=== %s exit %d (%v)\n", time.Now().UTC().Format(time.RFC3339Nano), code, err)
	return code
}
