# The clouds' spec files pushpool-mock validates against (tests/data/cloud-specs):
# the protos compiled into FileDescriptorSets by protoc, then every file
# embedded in the mock with .incbin (no copy through the C compiler).
CLOUD_SPECS     := tests/data/cloud-specs
CLOUD_PROTOS    := $(shell find $(CLOUD_SPECS) -name '*.proto' 2>/dev/null)
RUN_PROTO_ROOTS := google/cloud/run/v2/job.proto google/cloud/run/v2/execution.proto \
	google/logging/v2/logging.proto
MODAL_PROTO_ROOTS := modal/modal_proto/api.proto
GCPINFRA_PROTO_ROOTS := google/api/serviceusage/v1/serviceusage.proto google/iam/admin/v1/iam.proto \
	google/cloud/resourcemanager/v3/projects.proto google/devtools/artifactregistry/v1/service.proto

$(BUILD)/gen/run.pb: $(CLOUD_PROTOS) | deps
	@mkdir -p $(dir $@)
	protoc -I $(CLOUD_SPECS) --include_imports --descriptor_set_out=$@.tmp $(RUN_PROTO_ROOTS) 2>&1 | \
		{ grep -v 'is unused' >&2 || true; }
	@test -s $@.tmp && mv $@.tmp $@

$(BUILD)/gen/modal.pb: $(CLOUD_PROTOS) | deps
	@mkdir -p $(dir $@)
	protoc -I $(CLOUD_SPECS) --include_imports --descriptor_set_out=$@.tmp $(MODAL_PROTO_ROOTS)
	@mv $@.tmp $@

$(BUILD)/gen/gcpinfra.pb: $(CLOUD_PROTOS) | deps
	@mkdir -p $(dir $@)
	protoc -I $(CLOUD_SPECS) --include_imports --descriptor_set_out=$@.tmp $(GCPINFRA_PROTO_ROOTS) 2>&1 | \
		{ grep -v 'is unused' >&2 || true; }
	@test -s $@.tmp && mv $@.tmp $@

# name=file pairs: the names mock/spec.h documents.
SPEC_BLOBS := ecs=$(CLOUD_SPECS)/aws/ecs/service-2.json \
	iam=$(CLOUD_SPECS)/aws/iam/service-2.json ec2=$(CLOUD_SPECS)/aws/ec2/service-2.json \
	ecr=$(CLOUD_SPECS)/aws/ecr/service-2.json logs=$(CLOUD_SPECS)/aws/logs/service-2.json \
	aci=$(CLOUD_SPECS)/azure/containerinstance-2023-05-01.json \
	resources=$(CLOUD_SPECS)/azure/resources-2021-04-01.json \
	msi=$(CLOUD_SPECS)/azure/ManagedIdentity-2023-01-31.json \
	acr=$(CLOUD_SPECS)/azure/containerregistry-2023-07-01.json \
	authz=$(CLOUD_SPECS)/azure/authorization-RoleAssignmentsCalls-2022-04-01.json \
	run=$(BUILD)/gen/run.pb modal=$(BUILD)/gen/modal.pb gcpinfra=$(BUILD)/gen/gcpinfra.pb

$(BUILD)/gen/cloud_specs.c: tools/embed-specs.sh mk/cloud-specs.mk
	@mkdir -p $(dir $@)
	sh tools/embed-specs.sh $(SPEC_BLOBS) > $@.tmp && mv $@.tmp $@

# .incbin reads the files when assembling: they are prerequisites of the object.
$(BUILD)/gen/cloud_specs.o: $(BUILD)/gen/cloud_specs.c $(foreach b,$(SPEC_BLOBS),$(lastword $(subst =, ,$(b))))
	$(CC) $(CFLAGS) -Wno-missing-prototypes -c -o $@ $<
