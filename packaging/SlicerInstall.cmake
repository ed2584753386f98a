# Install rules of the Slicer CLI module (included by plugin/CMakeLists.txt).
# Slicer searches CLI modules in <home>/${Slicer_CLIMODULES_LIB_DIR}
# (qSlicerCLIModuleFactoryHelper::modulePaths), which is
# lib/Slicer-<major>.<minor>/cli-modules (Slicer's CMake/SlicerDirectories.cmake:
# ${Slicer_LIB_DIR}/cli-modules), and extensions install there too
# (SEMMacroBuildCLI's INSTALL_RUNTIME/LIBRARY_DESTINATION).
#
# Two layouts:
# - Slicer extension (built through packaging/CMakeLists.txt with Slicer_DIR):
#   everything the module needs sits in the module folder: both forms, the
#   engine library and medinfer-models/<model>/.
# - Standalone install (tarball, .deb, cmake --install): the module goes to
#   <prefix>/lib/Slicer-X.Y/cli-modules and uses the engine of <prefix>/lib
#   and the cards of <prefix>/share/medinfer/models (packaging/Install.cmake).
set(MEDINFER_SLICER_VERSION "5.8" CACHE STRING "Slicer major.minor the standalone install targets")
if(DEFINED Slicer_INSTALL_CLIMODULES_LIB_DIR)
  set(MEDINFER_SLICER_CLI_DIR "${Slicer_INSTALL_CLIMODULES_LIB_DIR}")
  set(MEDINFER_SLICER_EXTENSION ON)
elseif(DEFINED Slicer_CLIMODULES_LIB_DIR)
  set(MEDINFER_SLICER_CLI_DIR "${Slicer_CLIMODULES_LIB_DIR}")
  set(MEDINFER_SLICER_EXTENSION ON)
else()
  set(MEDINFER_SLICER_CLI_DIR "lib/Slicer-${MEDINFER_SLICER_VERSION}/cli-modules")
  set(MEDINFER_SLICER_EXTENSION OFF)
endif()
string(REGEX REPLACE "^\\./" "" MEDINFER_SLICER_CLI_DIR "${MEDINFER_SLICER_CLI_DIR}")
# Read by packaging/Install.cmake (a different directory scope).
set(MEDINFER_SLICER_CLI_DIR "${MEDINFER_SLICER_CLI_DIR}" CACHE INTERNAL "install folder of the Slicer CLI module")
set(MEDINFER_SLICER_EXTENSION ${MEDINFER_SLICER_EXTENSION} CACHE INTERNAL "built as a Slicer extension")

# Both forms side by side, as Slicer's own CLI modules are installed.  The
# library is matched by file name (^lib.+Lib\.so$): no soname symlinks.
install(TARGETS MedinferSegment RUNTIME DESTINATION "${MEDINFER_SLICER_CLI_DIR}" COMPONENT SlicerModule)
install(TARGETS MedinferSegmentLib LIBRARY DESTINATION "${MEDINFER_SLICER_CLI_DIR}" COMPONENT SlicerModule)
# No MedinferSegment.xml beside them on purpose: when it exists Slicer reads
# it instead of the library's symbol (qSlicerCLILoadableModuleFactoryItem::
# instanciator), and the symbol is the single source.

if(MEDINFER_SLICER_EXTENSION)
  # The engine (and its CUDA backend, a module it loads from its own folder)
  # beside the module, found through $ORIGIN whatever Slicer's
  # LD_LIBRARY_PATH is.  Its name (libmedinfer_engine.so.N) does not match
  # Slicer's CLI library pattern, so Slicer does not try to load it as a module.
  set_target_properties(MedinferSegment MedinferSegmentLib PROPERTIES INSTALL_RPATH "$ORIGIN")
  install(TARGETS medinfer_engine LIBRARY DESTINATION "${MEDINFER_SLICER_CLI_DIR}" NAMELINK_SKIP COMPONENT SlicerModule)
  if(TARGET medinfer_cuda)
    install(TARGETS medinfer_cuda LIBRARY DESTINATION "${MEDINFER_SLICER_CLI_DIR}" COMPONENT SlicerModule)
  endif()
  # Models beside the module: <cli-modules>/medinfer-models/<model>/, where
  # MedinferSegment looks first for --model NAME.
  install(DIRECTORY "${PROJECT_SOURCE_DIR}/models/" DESTINATION "${MEDINFER_SLICER_CLI_DIR}/medinfer-models"
          COMPONENT SlicerModule
          FILES_MATCHING PATTERN "*.card.json" PATTERN "*.onnx" PATTERN "*.onnx.data" PATTERN "LICENSE*"
          PATTERN "scripts" EXCLUDE)
else()
  # Standalone: the engine of <prefix>/${CMAKE_INSTALL_LIBDIR}, relative to the
  # module folder so that an unpacked tarball runs from anywhere.
  include(GNUInstallDirs)
  file(RELATIVE_PATH _mi_cli_to_lib "/p/${MEDINFER_SLICER_CLI_DIR}" "/p/${CMAKE_INSTALL_LIBDIR}")
  set_target_properties(MedinferSegment MedinferSegmentLib PROPERTIES INSTALL_RPATH "$ORIGIN:$ORIGIN/${_mi_cli_to_lib}")
endif()
