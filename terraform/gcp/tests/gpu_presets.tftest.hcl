# Every serving preset's GPU VM on Google Cloud: machine type, accelerator type and count
# (attached to N1, built into A2 and G2), disk, the model server port; and the shapes
# Google refuses. Which model fits which GPU is duoctl's decision (scripts/duoctl/serving.py,
# check_fit) before Terraform runs; here only the shapes. The assertions read only gpu.tf and
# variables.tf, so tests/terraform runs this file on those two files where no google provider
# is installed; tests/unit/test_serving.py checks that every preset has its run here.

mock_provider "google" {}

variables {
  project_id     = "duo-test"
  gitlab_domain  = "gitlab.example.com"
  admin_cidrs    = ["198.51.100.7/32"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample"
}

run "preset_llama_3_1_8b_awq_t4" {
  command = plan
  variables {
    ollama_machine_type = "n1-standard-4"
    ollama_gpu_type     = "nvidia-tesla-t4"
    ollama_gpu_count    = 1
    ollama_disk_gb      = 60
    model_port          = 8000
  }

  assert {
    condition     = output.gpu_vm.machine_type == "n1-standard-4" && output.gpu_vm.accelerator_type == "nvidia-tesla-t4" && output.gpu_vm.accelerator_count == 1 && output.gpu_vm.disk_gb == 60
    error_message = "preset llama-3.1-8b-awq-t4: n1-standard-4 with 1 x nvidia-tesla-t4 and 60 GB"
  }

  assert {
    condition     = local.model_port == 8000
    error_message = "preset llama-3.1-8b-awq-t4: the model server port is 8000"
  }
}

run "preset_llama_3_1_8b_fp8_l4" {
  command = plan
  variables {
    ollama_machine_type = "g2-standard-4"
    ollama_gpu_type     = "nvidia-l4"
    ollama_gpu_count    = 1
    ollama_disk_gb      = 60
    model_port          = 8000
  }

  assert {
    condition     = output.gpu_vm.machine_type == "g2-standard-4" && output.gpu_vm.accelerator_type == "nvidia-l4" && output.gpu_vm.accelerator_count == 1 && output.gpu_vm.disk_gb == 60
    error_message = "preset llama-3.1-8b-fp8-l4: g2-standard-4 with 1 x nvidia-l4 and 60 GB"
  }

  assert {
    condition     = local.model_port == 8000
    error_message = "preset llama-3.1-8b-fp8-l4: the model server port is 8000"
  }
}

run "preset_mistral_small_24b_w4a16_l4" {
  command = plan
  variables {
    ollama_machine_type = "g2-standard-8"
    ollama_gpu_type     = "nvidia-l4"
    ollama_gpu_count    = 1
    ollama_disk_gb      = 80
    model_port          = 8000
  }

  assert {
    condition     = output.gpu_vm.machine_type == "g2-standard-8" && output.gpu_vm.accelerator_type == "nvidia-l4" && output.gpu_vm.accelerator_count == 1 && output.gpu_vm.disk_gb == 80
    error_message = "preset mistral-small-24b-w4a16-l4: g2-standard-8 with 1 x nvidia-l4 and 80 GB"
  }

  assert {
    condition     = local.model_port == 8000
    error_message = "preset mistral-small-24b-w4a16-l4: the model server port is 8000"
  }
}

run "preset_mistral_small_24b_bf16_a100_80" {
  command = plan
  variables {
    ollama_machine_type = "a2-ultragpu-1g"
    ollama_gpu_type     = "nvidia-a100-80gb"
    ollama_gpu_count    = 1
    ollama_disk_gb      = 140
    model_port          = 8000
  }

  assert {
    condition     = output.gpu_vm.machine_type == "a2-ultragpu-1g" && output.gpu_vm.accelerator_type == "nvidia-a100-80gb" && output.gpu_vm.accelerator_count == 1 && output.gpu_vm.disk_gb == 140
    error_message = "preset mistral-small-24b-bf16-a100-80: a2-ultragpu-1g with 1 x nvidia-a100-80gb and 140 GB"
  }

  assert {
    condition     = local.model_port == 8000
    error_message = "preset mistral-small-24b-bf16-a100-80: the model server port is 8000"
  }
}

run "preset_codestral_22b_awq_l4" {
  command = plan
  variables {
    ollama_machine_type = "g2-standard-8"
    ollama_gpu_type     = "nvidia-l4"
    ollama_gpu_count    = 1
    ollama_disk_gb      = 70
    model_port          = 8000
  }

  assert {
    condition     = output.gpu_vm.machine_type == "g2-standard-8" && output.gpu_vm.accelerator_type == "nvidia-l4" && output.gpu_vm.accelerator_count == 1 && output.gpu_vm.disk_gb == 70
    error_message = "preset codestral-22b-awq-l4: g2-standard-8 with 1 x nvidia-l4 and 70 GB"
  }

  assert {
    condition     = local.model_port == 8000
    error_message = "preset codestral-22b-awq-l4: the model server port is 8000"
  }
}

run "preset_gpt_oss_20b_l4" {
  command = plan
  variables {
    ollama_machine_type = "g2-standard-8"
    ollama_gpu_type     = "nvidia-l4"
    ollama_gpu_count    = 1
    ollama_disk_gb      = 70
    model_port          = 8000
  }

  assert {
    condition     = output.gpu_vm.machine_type == "g2-standard-8" && output.gpu_vm.accelerator_type == "nvidia-l4" && output.gpu_vm.accelerator_count == 1 && output.gpu_vm.disk_gb == 70
    error_message = "preset gpt-oss-20b-l4: g2-standard-8 with 1 x nvidia-l4 and 70 GB"
  }

  assert {
    condition     = local.model_port == 8000
    error_message = "preset gpt-oss-20b-l4: the model server port is 8000"
  }
}

run "preset_gpt_oss_120b_a100_80" {
  command = plan
  variables {
    ollama_machine_type = "a2-ultragpu-1g"
    ollama_gpu_type     = "nvidia-a100-80gb"
    ollama_gpu_count    = 1
    ollama_disk_gb      = 180
    model_port          = 8000
  }

  assert {
    condition     = output.gpu_vm.machine_type == "a2-ultragpu-1g" && output.gpu_vm.accelerator_type == "nvidia-a100-80gb" && output.gpu_vm.accelerator_count == 1 && output.gpu_vm.disk_gb == 180
    error_message = "preset gpt-oss-120b-a100-80: a2-ultragpu-1g with 1 x nvidia-a100-80gb and 180 GB"
  }

  assert {
    condition     = local.model_port == 8000
    error_message = "preset gpt-oss-120b-a100-80: the model server port is 8000"
  }
}

run "preset_llama_3_3_70b_bf16_a100_80x2" {
  command = plan
  variables {
    ollama_machine_type = "a2-ultragpu-2g"
    ollama_gpu_type     = "nvidia-a100-80gb"
    ollama_gpu_count    = 2
    ollama_disk_gb      = 330
    model_port          = 8000
  }

  assert {
    condition     = output.gpu_vm.machine_type == "a2-ultragpu-2g" && output.gpu_vm.accelerator_type == "nvidia-a100-80gb" && output.gpu_vm.accelerator_count == 2 && output.gpu_vm.disk_gb == 330
    error_message = "preset llama-3.3-70b-bf16-a100-80x2: a2-ultragpu-2g with 2 x nvidia-a100-80gb and 330 GB"
  }

  assert {
    condition     = local.model_port == 8000
    error_message = "preset llama-3.3-70b-bf16-a100-80x2: the model server port is 8000"
  }
}

run "default_keeps_ollama" {
  command = plan

  assert {
    condition     = local.model_port == 11434 && output.gpu_vm.machine_type == "n1-standard-4" && output.gpu_vm.accelerator_type == "nvidia-tesla-t4" && output.gpu_vm.accelerator_count == 1
    error_message = "without model_port the model server is Ollama on 11434, on n1-standard-4 with one T4"
  }
}

run "l4_machine_with_t4" {
  command = plan
  variables {
    ollama_machine_type = "g2-standard-8"
  }
  expect_failures = [output.gpu_vm]
}

run "g2_count_not_built_in" {
  command = plan
  variables {
    ollama_machine_type = "g2-standard-24"
    ollama_gpu_type     = "nvidia-l4"
    ollama_gpu_count    = 1
  }
  expect_failures = [output.gpu_vm]
}

run "a100_80_type_on_a2_highgpu" {
  command = plan
  variables {
    ollama_machine_type = "a2-highgpu-1g"
    ollama_gpu_type     = "nvidia-a100-80gb"
  }
  expect_failures = [output.gpu_vm]
}

run "l4_attached_to_n1" {
  command = plan
  variables {
    ollama_gpu_type = "nvidia-l4"
  }
  expect_failures = [output.gpu_vm]
}

run "three_t4_on_n1" {
  command = plan
  variables {
    ollama_gpu_count = 3
  }
  expect_failures = [var.ollama_gpu_count]
}

run "n1_with_4_t4" {
  command = plan
  variables {
    ollama_machine_type = "n1-standard-16"
    ollama_gpu_count    = 4
  }

  assert {
    condition     = output.gpu_vm.accelerator_count == 4
    error_message = "N1 takes 4 T4"
  }
}

run "e2_has_no_gpu" {
  command = plan
  variables {
    ollama_machine_type = "e2-standard-8"
  }
  expect_failures = [var.ollama_machine_type]
}

run "unknown_g2_size" {
  command = plan
  variables {
    ollama_machine_type = "g2-standard-2"
    ollama_gpu_type     = "nvidia-l4"
  }
  expect_failures = [output.gpu_vm]
}

run "model_port_privileged" {
  command = plan
  variables {
    model_port = 80
  }
  expect_failures = [var.model_port]
}
