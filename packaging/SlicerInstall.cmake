# Install rules of the Slicer CLI module (included by plugin/CMakeLists.txt).
# Slicer searches CLI modules in <home>/${Slicer_CLIMODULES_LIB_DIR}
# (qSlicerCLIModuleFactoryHelper::modulePaths), which is
# lib/Slicer-<major>.<minor>/cli-modules, and extensions install there too.
# Built against a Slicer tree (Slicer_DIR, Slicer_USE_FILE included), use its
# variable; otherwise name the Slicer version it is meant for.
set(MEDINFER_SLICER_VERSION "5.8" CACHE STRING "Slicer major.minor the standalone install targets")
if(DEFINED Slicer_CLIMODULES_LIB_DIR)
  set(MEDINFER_SLICER_CLI_DIR "${Slicer_CLIMODULES_LIB_DIR}")
else()
  set(MEDINFER_SLICER_CLI_DIR "lib/Slicer-${MEDINFER_SLICER_VERSION}/cli-modules")
endif()

# Both forms side by side, as Slicer's own CLI modules are installed.  The
# library is matched by file name (^lib.+Lib\.so$): no soname symlinks.
install(TARGETS MedinferSegment RUNTIME DESTINATION "${MEDINFER_SLICER_CLI_DIR}" COMPONENT SlicerModule)
install(TARGETS MedinferSegmentLib LIBRARY DESTINATION "${MEDINFER_SLICER_CLI_DIR}" COMPONENT SlicerModule)
# The engine is a shared library (and its CUDA backend a module it loads
# from its own folder): ship them beside the module and let both forms find
# them through $ORIGIN, whatever Slicer's LD_LIBRARY_PATH is.
set_target_properties(MedinferSegment MedinferSegmentLib PROPERTIES INSTALL_RPATH "$ORIGIN")
foreach(lib IN ITEMS medinfer_engine medinfer_cuda)
  if(TARGET ${lib})
    install(FILES "$<TARGET_FILE:${lib}>" DESTINATION "${MEDINFER_SLICER_CLI_DIR}" COMPONENT SlicerModule)
  endif()
endforeach()
# No MedinferSegment.xml beside them on purpose: when it exists Slicer reads
# it instead of the library's symbol (qSlicerCLILoadableModuleFactoryItem::
# instanciator), and the symbol is the single source.

# Models beside the module: <cli-modules>/medinfer-models/<model>/, where
# MedinferSegment looks first for --model NAME.
install(DIRECTORY "${PROJECT_SOURCE_DIR}/models/" DESTINATION "${MEDINFER_SLICER_CLI_DIR}/medinfer-models"
        COMPONENT SlicerModule
        FILES_MATCHING PATTERN "*.card.json" PATTERN "*.onnx" PATTERN "*.onnx.data" PATTERN "LICENSE*"
        PATTERN "scripts" EXCLUDE)
