# runvm serve on every KVM client of a Nomad cluster (docs/deploy.md):
# a system job, one allocation per node with /dev/kvm.
job "runvm-serve" {
  type = "system"

  constraint {
    attribute = "${meta.kvm}"
    value     = "true"
  }

  group "serve" {
    network {
      port "http" { static = 8080 }
    }

    service {
      name     = "runvm-serve"
      port     = "http"
      provider = "nomad"
      check {
        type     = "http"
        path     = "/status"
        interval = "2s"
        timeout  = "1s"
      }
    }

    task "serve" {
      driver = "docker"
      # SIGTERM drains; give the longest run time to finish.
      kill_timeout = "720s"
      kill_signal  = "SIGTERM"

      config {
        image = "registry.example/runvm:latest"
        args  = ["serve", "--api-sock", "/run/runvm/api.sock",
                 "--listen", "0.0.0.0:8080", "--langs", "go,python,c,rust,javascript,java",
                 "--max-vms", "16", "--warm", "2"]
        ports = ["http"]
        devices = [{ host_path = "/dev/kvm", container_path = "/dev/kvm" }]
        cap_drop = ["ALL"]
      }

      env {
        RUNVM_SNAPSHOTS = "/local/snapshots"
        XDG_RUNTIME_DIR = "/local/run"
      }

      resources {
        cpu    = 8000
        memory = 16384
      }
    }
  }
}
