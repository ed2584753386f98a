// DCMTK's decoders are process-global; register them exactly once.  DCMTK's
// own stderr logging is silenced: every problem reaches the caller as an
// mi_status naming the file, and a library must not write to stderr.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <mutex>

#include "internal.h"

namespace mi_dicom {

void register_codecs() {
  static std::once_flag once;
  std::call_once(once, [] {
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
  });
}

}  // namespace mi_dicom
