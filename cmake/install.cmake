# install.cmake -- what `cmake --install` puts where (included by the
# top-level CMakeLists.txt when ETAGKV_INSTALL is on).  The Debian package
# (debian/*.install) splits the same tree into its four packages.
include(CMakePackageConfigHelpers)
set(ETAGKV_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/etagkv)

# The libraries and the header.  find_package(etagkv) gives them as
# etagkv::etagkv and etagkv::etagkv_static.
set_target_properties(etagkv_static PROPERTIES EXPORT_NAME etagkv_static)
install(TARGETS etagkv etagkv_static EXPORT etagkvTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES include/etagkv.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The CMake package.
install(EXPORT etagkvTargets NAMESPACE etagkv::
        DESTINATION ${ETAGKV_CMAKEDIR})
configure_package_config_file(cmake/etagkvConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/etagkvConfig.cmake
  INSTALL_DESTINATION ${ETAGKV_CMAKEDIR})
# 0.x: a minor version may change the API, so only the same minor matches.
write_basic_package_version_file(
  ${CMAKE_CURRENT_BINARY_DIR}/etagkvConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/etagkvConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/etagkvConfigVersion.cmake
        DESTINATION ${ETAGKV_CMAKEDIR})

# The pkg-config module; paths relative to ${prefix} where they can be.
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(ETAGKV_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(ETAGKV_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
configure_file(cmake/etagkv.pc.in ${CMAKE_CURRENT_BINARY_DIR}/etagkv.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/etagkv.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# Manual pages, and the licence beside the other documents.
install(FILES docs/man/etagkv.3 DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)
if(ETAGKV_BUILD_CLI)
  install(FILES docs/man/etagkv.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endif()
if(ETAGKV_BUILD_SERVER)
  install(FILES docs/man/etagkv-server.8
          DESTINATION ${CMAKE_INSTALL_MANDIR}/man8)
  configure_file(dist/etagkv-server.service.in
                 ${CMAKE_CURRENT_BINARY_DIR}/etagkv-server.service @ONLY)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/etagkv-server.service
          DESTINATION ${ETAGKV_SYSTEMD_UNITDIR})
endif()
install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
