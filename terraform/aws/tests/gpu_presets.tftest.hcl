# Every serving preset's GPU VM on AWS: instance type, disk, the vCPU quota it counts
# against, the model server port. Which model fits which GPU is duoctl's decision
# (scripts/duoctl/serving.py, check_fit) before Terraform runs; here only the shapes.
# tests/unit/test_serving.py checks that every preset has its run here.

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  gitlab_domain  = "gitlab.example.com"
  admin_cidrs    = ["198.51.100.7/32"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExampleExample"
}

run "preset_llama_3_1_8b_awq_t4" {
  command = plan
  variables {
    ollama_instance_type = "g4dn.xlarge"
    ollama_disk_gb       = 60
    model_port           = 8000
  }

  assert {
    condition     = aws_instance.vm["ollama"].instance_type == "g4dn.xlarge" && aws_instance.vm["ollama"].root_block_device[0].volume_size == 60
    error_message = "preset llama-3.1-8b-awq-t4: the model server VM must be g4dn.xlarge with 60 GB"
  }

  assert {
    condition     = output.gpu_vm.quota_code == "L-DB2E81BA" && output.gpu_vm.vcpus == 4
    error_message = "preset llama-3.1-8b-awq-t4: g4dn.xlarge counts 4 vCPUs against L-DB2E81BA"
  }

  assert {
    condition     = output.model_port == 8000 && output.ollama_port == 8000 && aws_vpc_security_group_ingress_rule.vm["ollama_api"].from_port == 8000
    error_message = "preset llama-3.1-8b-awq-t4: the model server port is 8000, opened to the AI gateway"
  }
}

run "preset_llama_3_1_8b_fp8_l4" {
  command = plan
  variables {
    ollama_instance_type = "g6.xlarge"
    ollama_disk_gb       = 60
    model_port           = 8000
  }

  assert {
    condition     = aws_instance.vm["ollama"].instance_type == "g6.xlarge" && aws_instance.vm["ollama"].root_block_device[0].volume_size == 60
    error_message = "preset llama-3.1-8b-fp8-l4: the model server VM must be g6.xlarge with 60 GB"
  }

  assert {
    condition     = output.gpu_vm.quota_code == "L-DB2E81BA" && output.gpu_vm.vcpus == 4
    error_message = "preset llama-3.1-8b-fp8-l4: g6.xlarge counts 4 vCPUs against L-DB2E81BA"
  }

  assert {
    condition     = output.model_port == 8000 && output.ollama_port == 8000 && aws_vpc_security_group_ingress_rule.vm["ollama_api"].from_port == 8000
    error_message = "preset llama-3.1-8b-fp8-l4: the model server port is 8000, opened to the AI gateway"
  }
}

run "preset_llama_3_1_8b_bf16_a10g" {
  command = plan
  variables {
    ollama_instance_type = "g5.2xlarge"
    ollama_disk_gb       = 80
    model_port           = 8000
  }

  assert {
    condition     = aws_instance.vm["ollama"].instance_type == "g5.2xlarge" && aws_instance.vm["ollama"].root_block_device[0].volume_size == 80
    error_message = "preset llama-3.1-8b-bf16-a10g: the model server VM must be g5.2xlarge with 80 GB"
  }

  assert {
    condition     = output.gpu_vm.quota_code == "L-DB2E81BA" && output.gpu_vm.vcpus == 8
    error_message = "preset llama-3.1-8b-bf16-a10g: g5.2xlarge counts 8 vCPUs against L-DB2E81BA"
  }

  assert {
    condition     = output.model_port == 8000 && output.ollama_port == 8000 && aws_vpc_security_group_ingress_rule.vm["ollama_api"].from_port == 8000
    error_message = "preset llama-3.1-8b-bf16-a10g: the model server port is 8000, opened to the AI gateway"
  }
}

run "preset_mistral_small_24b_w4a16_l4" {
  command = plan
  variables {
    ollama_instance_type = "g6.2xlarge"
    ollama_disk_gb       = 80
    model_port           = 8000
  }

  assert {
    condition     = aws_instance.vm["ollama"].instance_type == "g6.2xlarge" && aws_instance.vm["ollama"].root_block_device[0].volume_size == 80
    error_message = "preset mistral-small-24b-w4a16-l4: the model server VM must be g6.2xlarge with 80 GB"
  }

  assert {
    condition     = output.gpu_vm.quota_code == "L-DB2E81BA" && output.gpu_vm.vcpus == 8
    error_message = "preset mistral-small-24b-w4a16-l4: g6.2xlarge counts 8 vCPUs against L-DB2E81BA"
  }

  assert {
    condition     = output.model_port == 8000 && output.ollama_port == 8000 && aws_vpc_security_group_ingress_rule.vm["ollama_api"].from_port == 8000
    error_message = "preset mistral-small-24b-w4a16-l4: the model server port is 8000, opened to the AI gateway"
  }
}

run "preset_mistral_small_24b_w4a16_a10g" {
  command = plan
  variables {
    ollama_instance_type = "g5.2xlarge"
    ollama_disk_gb       = 80
    model_port           = 8000
  }

  assert {
    condition     = aws_instance.vm["ollama"].instance_type == "g5.2xlarge" && aws_instance.vm["ollama"].root_block_device[0].volume_size == 80
    error_message = "preset mistral-small-24b-w4a16-a10g: the model server VM must be g5.2xlarge with 80 GB"
  }

  assert {
    condition     = output.gpu_vm.quota_code == "L-DB2E81BA" && output.gpu_vm.vcpus == 8
    error_message = "preset mistral-small-24b-w4a16-a10g: g5.2xlarge counts 8 vCPUs against L-DB2E81BA"
  }

  assert {
    condition     = output.model_port == 8000 && output.ollama_port == 8000 && aws_vpc_security_group_ingress_rule.vm["ollama_api"].from_port == 8000
    error_message = "preset mistral-small-24b-w4a16-a10g: the model server port is 8000, opened to the AI gateway"
  }
}

run "preset_mistral_small_24b_fp8_l40s" {
  command = plan
  variables {
    ollama_instance_type = "g6e.xlarge"
    ollama_disk_gb       = 100
    model_port           = 8000
  }

  assert {
    condition     = aws_instance.vm["ollama"].instance_type == "g6e.xlarge" && aws_instance.vm["ollama"].root_block_device[0].volume_size == 100
    error_message = "preset mistral-small-24b-fp8-l40s: the model server VM must be g6e.xlarge with 100 GB"
  }

  assert {
    condition     = output.gpu_vm.quota_code == "L-DB2E81BA" && output.gpu_vm.vcpus == 4
    error_message = "preset mistral-small-24b-fp8-l40s: g6e.xlarge counts 4 vCPUs against L-DB2E81BA"
  }

  assert {
    condition     = output.model_port == 8000 && output.ollama_port == 8000 && aws_vpc_security_group_ingress_rule.vm["ollama_api"].from_port == 8000
    error_message = "preset mistral-small-24b-fp8-l40s: the model server port is 8000, opened to the AI gateway"
  }
}

run "preset_codestral_22b_awq_l4" {
  command = plan
  variables {
    ollama_instance_type = "g6.2xlarge"
    ollama_disk_gb       = 70
    model_port           = 8000
  }

  assert {
    condition     = aws_instance.vm["ollama"].instance_type == "g6.2xlarge" && aws_instance.vm["ollama"].root_block_device[0].volume_size == 70
    error_message = "preset codestral-22b-awq-l4: the model server VM must be g6.2xlarge with 70 GB"
  }

  assert {
    condition     = output.gpu_vm.quota_code == "L-DB2E81BA" && output.gpu_vm.vcpus == 8
    error_message = "preset codestral-22b-awq-l4: g6.2xlarge counts 8 vCPUs against L-DB2E81BA"
  }

  assert {
    condition     = output.model_port == 8000 && output.ollama_port == 8000 && aws_vpc_security_group_ingress_rule.vm["ollama_api"].from_port == 8000
    error_message = "preset codestral-22b-awq-l4: the model server port is 8000, opened to the AI gateway"
  }
}

run "preset_gpt_oss_20b_l4" {
  command = plan
  variables {
    ollama_instance_type = "g6.2xlarge"
    ollama_disk_gb       = 70
    model_port           = 8000
  }

  assert {
    condition     = aws_instance.vm["ollama"].instance_type == "g6.2xlarge" && aws_instance.vm["ollama"].root_block_device[0].volume_size == 70
    error_message = "preset gpt-oss-20b-l4: the model server VM must be g6.2xlarge with 70 GB"
  }

  assert {
    condition     = output.gpu_vm.quota_code == "L-DB2E81BA" && output.gpu_vm.vcpus == 8
    error_message = "preset gpt-oss-20b-l4: g6.2xlarge counts 8 vCPUs against L-DB2E81BA"
  }

  assert {
    condition     = output.model_port == 8000 && output.ollama_port == 8000 && aws_vpc_security_group_ingress_rule.vm["ollama_api"].from_port == 8000
    error_message = "preset gpt-oss-20b-l4: the model server port is 8000, opened to the AI gateway"
  }
}

run "preset_gpt_oss_120b_h100" {
  command = plan
  variables {
    ollama_instance_type = "p5.4xlarge"
    ollama_disk_gb       = 180
    model_port           = 8000
  }

  assert {
    condition     = aws_instance.vm["ollama"].instance_type == "p5.4xlarge" && aws_instance.vm["ollama"].root_block_device[0].volume_size == 180
    error_message = "preset gpt-oss-120b-h100: the model server VM must be p5.4xlarge with 180 GB"
  }

  assert {
    condition     = output.gpu_vm.quota_code == "L-417A185B" && output.gpu_vm.vcpus == 16
    error_message = "preset gpt-oss-120b-h100: p5.4xlarge counts 16 vCPUs against L-417A185B"
  }

  assert {
    condition     = output.model_port == 8000 && output.ollama_port == 8000 && aws_vpc_security_group_ingress_rule.vm["ollama_api"].from_port == 8000
    error_message = "preset gpt-oss-120b-h100: the model server port is 8000, opened to the AI gateway"
  }
}

run "preset_llama_3_3_70b_bf16_a100x8" {
  command = plan
  variables {
    ollama_instance_type = "p4d.24xlarge"
    ollama_disk_gb       = 330
    model_port           = 8000
  }

  assert {
    condition     = aws_instance.vm["ollama"].instance_type == "p4d.24xlarge" && aws_instance.vm["ollama"].root_block_device[0].volume_size == 330
    error_message = "preset llama-3.3-70b-bf16-a100x8: the model server VM must be p4d.24xlarge with 330 GB"
  }

  assert {
    condition     = output.gpu_vm.quota_code == "L-417A185B" && output.gpu_vm.vcpus == 96
    error_message = "preset llama-3.3-70b-bf16-a100x8: p4d.24xlarge counts 96 vCPUs against L-417A185B"
  }

  assert {
    condition     = output.model_port == 8000 && output.ollama_port == 8000 && aws_vpc_security_group_ingress_rule.vm["ollama_api"].from_port == 8000
    error_message = "preset llama-3.3-70b-bf16-a100x8: the model server port is 8000, opened to the AI gateway"
  }
}

run "default_keeps_ollama" {
  command = plan

  assert {
    condition     = output.model_port == 11434 && output.ollama_port == 11434 && output.gpu_vm.machine_type == "g4dn.xlarge" && output.gpu_vm.quota_code == "L-DB2E81BA" && output.gpu_vm.vcpus == 4
    error_message = "without model_port the model server is Ollama on 11434 on a g4dn.xlarge"
  }
}

run "not_a_gpu_instance_type" {
  command = plan
  variables {
    ollama_instance_type = "m6i.xlarge"
  }
  expect_failures = [var.ollama_instance_type]
}

run "model_port_privileged" {
  command = plan
  variables {
    model_port = 80
  }
  expect_failures = [var.model_port]
}
