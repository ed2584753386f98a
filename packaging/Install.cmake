# Standalone installation of medinfer (included by the top-level
# CMakeLists.txt after every module):
#
#   <prefix>/bin/medinfer                                  the command
#   <prefix>/lib/libmedinfer_engine.so.N (+ .so)            the engine (+ CUDA backend module)
#   <prefix>/lib/Slicer-X.Y/cli-modules/MedinferSegment     the Slicer CLI module, both forms
#   <prefix>/lib/Slicer-X.Y/cli-modules/libMedinferSegmentLib.so
#   <prefix>/include/medinfer/{engine,status}.h           the engine's public API
#   <prefix>/lib/pkgconfig/medinfer.pc                     pkg-config: medinfer
#   <prefix>/lib/cmake/medinfer/                            find_package(medinfer): medinfer::engine
#   <prefix>/share/medinfer/models/<model>/                 model cards and networks
#   <prefix>/share/doc/medinfer/                            README, licence, card format
#
# Every RPATH is $ORIGIN-relative: an unpacked tarball runs from any folder.
# A Slicer extension build (packaging/CMakeLists.txt) installs only the
# module folder (packaging/SlicerInstall.cmake).
if(MEDINFER_SLICER_EXTENSION)
  return()
endif()
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

function(_mi_rpath target from_dir)
  file(RELATIVE_PATH _rel "/p/${from_dir}" "/p/${CMAKE_INSTALL_LIBDIR}")
  if(_rel STREQUAL "")
    set(_rpath "$ORIGIN")
  else()
    set(_rpath "$ORIGIN/${_rel}")
  endif()
  set_target_properties(${target} PROPERTIES INSTALL_RPATH "${_rpath}")
endfunction()

# The engine: a versioned shared library (soname libmedinfer_engine.so.<major>).
set_target_properties(medinfer_engine PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
                      EXPORT_NAME engine)
target_include_directories(medinfer_engine INTERFACE $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
install(TARGETS medinfer_engine EXPORT medinferTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime NAMELINK_COMPONENT Development)
if(TARGET medinfer_cuda)
  # Loaded by the engine from its own folder (engine/src/cuda_loader.c).
  _mi_rpath(medinfer_cuda ${CMAKE_INSTALL_LIBDIR})
  install(TARGETS medinfer_cuda LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime)
endif()

_mi_rpath(medinfer ${CMAKE_INSTALL_BINDIR})
install(TARGETS medinfer RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)
# medinfer_common is a static library compiled into the engine: its mi_status
# functions are exported by libmedinfer_engine, its headers
# installed with the engine's (engine/CMakeLists.txt links it build-only).
install(FILES ${PROJECT_SOURCE_DIR}/engine/include/medinfer/engine.h
              ${PROJECT_SOURCE_DIR}/common/include/medinfer/status.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/medinfer COMPONENT Development)

# The engine's install interface must not name the build tree's include
# folders: they are BUILD_INTERFACE only.
foreach(_t IN ITEMS medinfer_engine)
  get_target_property(_inc ${_t} INTERFACE_INCLUDE_DIRECTORIES)
  set(_fixed "")
  foreach(_d IN LISTS _inc)
    if(_d MATCHES "^\\$<")
      list(APPEND _fixed "${_d}")
    else()
      list(APPEND _fixed "$<BUILD_INTERFACE:${_d}>")
    endif()
  endforeach()
  set_target_properties(${_t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
endforeach()

# CMake package: find_package(medinfer CONFIG) -> medinfer::engine.
set(_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/medinfer)
install(EXPORT medinferTargets NAMESPACE medinfer:: DESTINATION ${_cmake_dir} COMPONENT Development)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/medinferConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/packaging/medinferConfig.cmake
                              INSTALL_DESTINATION ${_cmake_dir}
                              PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_DATADIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/packaging/medinferConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/packaging/medinferConfig.cmake
              ${PROJECT_BINARY_DIR}/packaging/medinferConfigVersion.cmake
        DESTINATION ${_cmake_dir} COMPONENT Development)

# pkg-config: prefix relative to the .pc file, so the tarball works unpacked
# anywhere (pkg-config's ${pcfiledir}).
file(RELATIVE_PATH _pc_to_prefix "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
string(REGEX REPLACE "/$" "" _pc_to_prefix "${_pc_to_prefix}")
set(MI_PC_PREFIX "\${pcfiledir}/${_pc_to_prefix}")
configure_file(${CMAKE_CURRENT_LIST_DIR}/medinfer.pc.in ${PROJECT_BINARY_DIR}/packaging/medinfer.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/packaging/medinfer.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
        COMPONENT Development)

# Model cards and networks, where `medinfer models` and the Slicer module
# look (segmentation/src/card_list.c, plugin/MedinferSegment.cxx).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/models/ DESTINATION ${CMAKE_INSTALL_DATADIR}/medinfer/models
        COMPONENT Runtime
        FILES_MATCHING PATTERN "*.card.json" PATTERN "*.onnx" PATTERN "*.onnx.data" PATTERN "LICENSE*"
        PATTERN "README.md" PATTERN "scripts" EXCLUDE)

install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/LICENSE ${PROJECT_SOURCE_DIR}/models/CARD.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT Runtime)
install(FILES ${PROJECT_SOURCE_DIR}/plugin/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR}
        RENAME MedinferSegment.md COMPONENT Runtime)
