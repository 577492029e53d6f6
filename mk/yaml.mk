# YAML documents (lib/yaml.c: prefect.yaml for `pushpool deploy`) are read
# with libyaml's event parser.
PKGS += yaml-0.1
DEB_PKGS += libyaml-dev
