# Packages of the standalone installation (packaging/Install.cmake):
#   cd build && cpack              # medinfer-<version>-Linux.tar.gz and medinfer_<version>-1_<arch>.deb
#   cpack -G TGZ | cpack -G DEB    # one of them
# The tarball unpacks to medinfer-<version>-Linux/{bin,lib,include,share} and
# runs from wherever it is unpacked ($ORIGIN RPATHs).  The .deb installs
# under /usr; its Depends come from dpkg-shlibdeps (Debian's runtime
# packages of DCMTK, ITK, OpenBLAS, protobuf-c, json-c...).
set(CPACK_PACKAGE_NAME medinfer)
set(CPACK_PACKAGE_VENDOR "The medinfer developers")
set(CPACK_PACKAGE_CONTACT "The medinfer developers <medinfer@users.noreply.github.com>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Deep-learning inference for DICOM and 3D Slicer: medinfer command, engine and Slicer CLI module")
set(CPACK_PACKAGE_DESCRIPTION
    "medinfer reads DICOM series, runs segmentation networks from ONNX files on its own engine (CPU with
OpenBLAS, optional CUDA) and writes DICOM SEG.  The package holds the medinfer command, the engine
library with its headers, CMake and pkg-config files, the 3D Slicer CLI module MedinferSegment
(executable and loadable library, in lib/Slicer-${MEDINFER_SLICER_VERSION}/cli-modules: add that folder to
Slicer's Additional module paths) and the shipped model cards.")
set(CPACK_PACKAGE_HOMEPAGE_URL "https://github.com/medinfer/medinfer")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_RESOURCE_FILE_README ${PROJECT_SOURCE_DIR}/README.md)
set(CPACK_GENERATOR "TGZ;DEB" CACHE STRING "CPack generators run by 'cpack' / 'make package'")
set(CPACK_SOURCE_GENERATOR "")
set(CPACK_PACKAGE_FILE_NAME "medinfer-${PROJECT_VERSION}-${CMAKE_SYSTEM_NAME}")
set(CPACK_STRIP_FILES ON)
# One package with every component (command, module, libraries, headers).
set(CPACK_ARCHIVE_COMPONENT_INSTALL OFF)
set(CPACK_DEB_COMPONENT_INSTALL OFF)

# Debian
set(CPACK_DEBIAN_PACKAGE_NAME medinfer)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # medinfer_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The package's own libraries (the engine, seen through the RUNPATHs of the
# command and the module) are not dependencies.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS
    "${CMAKE_BINARY_DIR}/engine")
# OpenBLAS is loaded at run time when MEDINFER_GEMM=openblas asks for it
# (the engine's reference GEMM), so shlibdeps does not see it.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libopenblas0")
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
