# YAML documents (lib/yaml.c: prefect.yaml for `pushpool deploy`) are read
# with libyaml's event parser.
PKGS += yaml-0.1
DEB_PKGS += libyaml-dev
# tests/scenario/yaml_oracle.sh reads random documents with lib/yaml (through
# this driver) and with PyYAML, the reader Prefect uses.
TEST_DEB_PKGS += python3-yaml

YAML_ORACLE := $(BUILD)/tests/yaml_oracle

$(YAML_ORACLE): tests/yaml_oracle.c $(BUILD)/libpushpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libpushpool.a $(LDLIBS)

# The scenario finds the driver beside the binary it tests.
all: $(YAML_ORACLE)
