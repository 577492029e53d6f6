# lib/xml.c reads the XML answers of AWS's Query protocol (IAM, EC2) with
# expat: Debian's libexpat1-dev, linked into pushpool and, through lib/,
# into pushpool-mock.
PKGS += expat
DEB_PKGS += libexpat1-dev
