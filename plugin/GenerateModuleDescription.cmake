# Build step (cmake -P): MedinferSegment.xml.in -> MedinferSegment.xml and a C
# file defining `char XMLModuleDescription[]` with the same bytes, so the
# module's XML (what `--xml` prints and what Slicer resolves from the library)
# never drifts from the .xml source.
#   -DIN=xml.in -DXML_OUT=... -DC_OUT=... -DVERSION=x.y.z -DMODELS_DIR=...
# The model enumeration lists the cards under MODELS_DIR/*/ (by their "name").
cmake_minimum_required(VERSION 3.22)
foreach(v IN ITEMS IN XML_OUT C_OUT VERSION MODELS_DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "GenerateModuleDescription.cmake: -D${v}= is required")
  endif()
endforeach()

set(_names "")
file(GLOB _cards LIST_DIRECTORIES false "${MODELS_DIR}/*/*.card.json")
list(SORT _cards)
foreach(card IN LISTS _cards)
  file(READ "${card}" _json)
  string(JSON _name ERROR_VARIABLE _err GET "${_json}" name)
  if(_err OR _name STREQUAL "")
    message(WARNING "${card}: no \"name\" (${_err}); left out of the model list")
  elseif(NOT _name MATCHES "^[A-Za-z0-9._+-]+$")
    message(WARNING "${card}: model name '${_name}' has characters not allowed in the list; left out")
  else()
    list(APPEND _names "${_name}")
  endif()
endforeach()
list(REMOVE_DUPLICATES _names)
if(NOT _names)
  # No card in the tree yet: list the model medinfer ships so the enumeration
  # is valid; choosing it without the model installed gives a clear error.
  set(_names demo-organs)
endif()
list(GET _names 0 MEDINFER_DEFAULT_MODEL)
set(MEDINFER_MODEL_ELEMENTS "")
foreach(n IN LISTS _names)
  string(APPEND MEDINFER_MODEL_ELEMENTS "      <element>${n}</element>\n")
endforeach()
set(MEDINFER_VERSION "${VERSION}")
configure_file("${IN}" "${XML_OUT}" @ONLY NEWLINE_STYLE UNIX)

# The same bytes as a C array: hex-encode, then 0xNN, per byte.
file(READ "${XML_OUT}" _hex HEX)
string(LENGTH "${_hex}" _len)
math(EXPR _bytes "${_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," _arr "${_hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n  " _arr "${_arr}")
string(RANDOM LENGTH 8 _rnd)  # concurrent runs (several make goals) must not share a temporary
set(_tmp "${C_OUT}.${_rnd}.tmp")
file(WRITE "${_tmp}"
"/* Generated from MedinferSegment.xml.in by GenerateModuleDescription.cmake: do not edit. */
/* Slicer's qSlicerCLILoadableModuleFactoryItem::resolveXMLModuleDescriptionSymbol()
 * resolves the *data* symbol XMLModuleDescription and reads it as char*. */
#include <stddef.h>
__attribute__((visibility(\"default\"))) char XMLModuleDescription[${_bytes} + 1] = {
  ${_arr}0x00};
const size_t medinfer_xml_module_description_size = ${_bytes};
")
file(COPY_FILE "${_tmp}" "${C_OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${_tmp}")
